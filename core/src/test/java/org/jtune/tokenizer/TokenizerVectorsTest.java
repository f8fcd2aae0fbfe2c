package org.jtune.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.jtune.testutil.Shared;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Encodes llama.cpp's tokenizer test strings and compares with the ids Hugging Face AutoTokenizer
 * produced (add_special_tokens=False), one shared tokenizer per vocabulary.
 */
class TokenizerVectorsTest {

    static Stream<Arguments> vocabularies() {
        return Stream.of(
                Arguments.of("llama-spm", "tokenizers/llama2-tinyllama/tokenizer.json"),
                Arguments.of("gpt-2", "tokenizers/gpt2/tokenizer.json"),
                Arguments.of("mpt", "tokenizers/gpt-neox/20B_tokenizer.json"),
                Arguments.of("llama-bpe", "tokenizers/llama3/tokenizer.json"),
                Arguments.of("qwen2", "tokenizers/qwen2.5/tokenizer.reconstructed.json"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("vocabularies")
    void encodesLlamaCppVectorsLikeHuggingFace(String name, String tokenizerFile) {
        Path base = Shared.root().resolve("tokenizers/vectors/llamacpp/ggml-vocab-" + name + ".gguf");
        List<String> inputs = readInputs(Path.of(base + ".inp"));
        List<String> outputs = Arrays.asList(
                Tokenizer.readText(Path.of(base + ".out")).split("\n", -1));
        // The .out file ends with a newline: one line per input plus an empty tail.
        assertEquals(inputs.size() + 1, outputs.size(), "inputs vs expected lines in " + base);
        try (Tokenizer tok = Tokenizer.fromFiles(Shared.path(tokenizerFile), null)) {
            for (int i = 0; i < inputs.size(); i++) {
                String line = outputs.get(i).strip();
                int[] expected = line.isEmpty() ? new int[0]
                        : Arrays.stream(line.split(" +")).mapToInt(Integer::parseInt).toArray();
                assertArrayEquals(expected, tok.encode(inputs.get(i), false),
                        name + " vector " + i + ": " + escape(inputs.get(i)));
            }
        }
    }

    /**
     * llama.cpp writes each test string followed by "\n__ggml_vocab_test__\n", so the separator
     * owns the newline before it: "\n\n" between separators is the one-character string "\n".
     */
    static List<String> readInputs(Path inp) {
        String text = Tokenizer.readText(inp);
        String sep = "\n__ggml_vocab_test__\n";
        List<String> inputs = new ArrayList<>();
        int from = 0;
        for (int at = text.indexOf(sep); at >= 0; at = text.indexOf(sep, from)) {
            inputs.add(text.substring(from, at));
            from = at + sep.length();
        }
        assertEquals(text.length(), from, "trailing text after the last separator in " + inp);
        return inputs;
    }

    private static String escape(String s) {
        return s.replace("\n", "\\n").replace("\t", "\\t");
    }
}
