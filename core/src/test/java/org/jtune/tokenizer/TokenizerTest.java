package org.jtune.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {

    @TempDir
    Path tmp;

    @Test
    void referenceModelAddsBosAndRoundTrips() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            int[] ids = tok.encode("Hello world", true);
            assertEquals(1, ids[0], "Llama-2 prepends <s>");
            assertEquals(OptionalInt.of(1), tok.bosTokenId());
            assertEquals(OptionalInt.of(2), tok.eosTokenId());
            assertEquals("<s>", tok.bosToken().orElseThrow());
            assertEquals("</s>", tok.eosToken().orElseThrow());
            assertEquals(32000, tok.vocabSize());
            assertArrayEquals(java.util.Arrays.copyOfRange(ids, 1, ids.length),
                    tok.encode("Hello world", false));
            assertEquals("Hello world", tok.decode(ids, true));
            assertEquals("<s> Hello world", tok.decode(ids, false));
            String text = "Ünïcödé, tabs\tand 3 spaces   end — €5 🦙";
            assertEquals(text, tok.decode(tok.encode(text, false), false));
            assertTrue(tok.chatTemplate().isPresent());
        }
    }

    @Test
    void llama3AndQwenSpecialTokensResolveToIds() {
        try (Tokenizer llama3 = Tokenizer.fromFiles(Shared.path("tokenizers/llama3/tokenizer.json"),
                Shared.path("tokenizers/llama3/tokenizer_config.llama3-8b-base.json"))) {
            assertEquals(OptionalInt.of(128000), llama3.bosTokenId());
            assertEquals(OptionalInt.of(128001), llama3.eosTokenId());
            assertEquals(OptionalInt.of(128009), llama3.tokenId("<|eot_id|>"));
            assertEquals(128256, llama3.vocabSize());
            assertTrue(llama3.chatTemplate().isEmpty(), "the base model config has no template");
        }
        try (Tokenizer qwen = Tokenizer.fromFiles(
                Shared.path("tokenizers/qwen2.5/tokenizer.reconstructed.json"),
                Shared.path("tokenizers/qwen2.5/tokenizer_config.json"))) {
            assertTrue(qwen.bosTokenId().isEmpty(), "Qwen has no BOS");
            assertEquals(OptionalInt.of(151645), qwen.eosTokenId());
            assertEquals(OptionalInt.of(151644), qwen.tokenId("<|im_start|>"));
            assertTrue(qwen.tokenId("no such token").isEmpty());
            int[] ids = qwen.encode("<|im_start|>user\nhi<|im_end|>", true);
            assertEquals(151644, ids[0], "special tokens in text are matched whole");
            assertEquals(151645, ids[ids.length - 1]);
            assertEquals("user\nhi", qwen.decode(ids, true));
        }
    }

    @Test
    void vocabAndMergesBuildTheSameByteLevelBpeAsTokenizerJson() throws IOException {
        Files.copy(Shared.path("tokenizers/gpt2/vocab.json"), tmp.resolve("vocab.json"));
        Files.copy(Shared.path("tokenizers/gpt2/merges.txt"), tmp.resolve("merges.txt"));
        Path base = Shared.path("tokenizers/vectors/llamacpp/ggml-vocab-gpt-2.gguf.inp");
        List<String> inputs = TokenizerVectorsTest.readInputs(base);
        try (Tokenizer fromMerges = Tokenizer.load(tmp);
                Tokenizer fromJson = Tokenizer.fromFiles(
                        Shared.path("tokenizers/gpt2/tokenizer.json"), null)) {
            assertEquals(fromJson.vocabSize(), fromMerges.vocabSize());
            for (String s : inputs) {
                int[] ids = fromJson.encode(s, false);
                assertArrayEquals(ids, fromMerges.encode(s, false), s);
                assertEquals(fromJson.decode(ids, false), fromMerges.decode(ids, false), s);
            }
        }
    }

    @Test
    void optVocabAndMergesPrependBosLikeTransformers() throws IOException {
        Files.copy(Shared.path("tokenizers/opt/vocab.json"), tmp.resolve("vocab.json"));
        Files.copy(Shared.path("tokenizers/opt/merges.txt"), tmp.resolve("merges.txt"));
        Files.copy(Shared.path("tokenizers/opt/tokenizer_config.resaved.json"),
                tmp.resolve("tokenizer_config.json"));
        Files.copy(Shared.path("tokenizers/opt/special_tokens_map.resaved.json"),
                tmp.resolve("special_tokens_map.json"));
        try (Tokenizer fromMerges = Tokenizer.load(tmp);
                Tokenizer converted = Tokenizer.fromFiles(
                        Shared.path("tokenizers/opt/tokenizer.converted-by-transformers.json"), null)) {
            String text = "Hello world, it's OPT!";
            assertArrayEquals(converted.encode(text, true), fromMerges.encode(text, true));
            assertEquals(2, fromMerges.encode(text, true)[0], "OPT starts with </s> as BOS");
            assertEquals(OptionalInt.of(2), fromMerges.bosTokenId());
        }
    }

    @Test
    void rejectsDirectoryWithoutTokenizerFiles() throws IOException {
        Files.writeString(tmp.resolve("config.json"), "{}");
        JTuneException e = assertThrows(JTuneException.class, () -> Tokenizer.load(tmp));
        assertTrue(e.getMessage().contains(tmp.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("token ids"), e.getMessage());
    }

    @Test
    void rejectsSentencePieceModelWithoutTokenizerJson() throws IOException {
        Files.writeString(tmp.resolve("tokenizer.model"), "not really");
        JTuneException e = assertThrows(JTuneException.class, () -> Tokenizer.load(tmp));
        assertTrue(e.getMessage().contains("provide tokenizer.json"), e.getMessage());
    }

    @Test
    void rejectsMalformedTokenizerJson() throws IOException {
        Path truncated = tmp.resolve("tokenizer.json");
        Files.writeString(truncated, "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\", \"vo");
        JTuneException e = assertThrows(JTuneException.class, () -> Tokenizer.fromFiles(truncated, null));
        assertTrue(e.getMessage().contains(truncated.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());

        Path wrongShape = tmp.resolve("wrong.json");
        Files.writeString(wrongShape, "{\"version\": \"1.0\", \"model\": {\"type\": \"Nonsense\"}}");
        e = assertThrows(JTuneException.class, () -> Tokenizer.fromFiles(wrongShape, null));
        assertTrue(e.getMessage().contains("could not load"), e.getMessage());
    }

    @Test
    void rejectsIdsOutsideTheVocabulary() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            JTuneException e = assertThrows(JTuneException.class,
                    () -> tok.decode(new int[] {1, 32000}, false));
            assertTrue(e.getMessage().contains("32000"), e.getMessage());
        }
    }

    @Test
    void chatTemplateListPicksDefault() throws IOException {
        Path config = tmp.resolve("tokenizer_config.json");
        Files.writeString(config, """
                {"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>",
                 "chat_template": [{"name": "tool_use", "template": "TOOLS"},
                                   {"name": "default", "template": "{{ bos_token }}{{ messages[0]['content'] }}"}]}
                """);
        try (Tokenizer tok = Tokenizer.fromFiles(
                Shared.path("tokenizers/llama2-tinyllama/tokenizer.json"), config)) {
            assertEquals("<s>hi", tok.chatTemplate().orElseThrow()
                    .render(List.of(new ChatMessage("user", "hi")), false));
        }
    }
}
