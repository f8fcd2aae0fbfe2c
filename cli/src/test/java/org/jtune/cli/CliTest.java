package org.jtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.jtune.io.safetensors.SafetensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The commands end to end, as a user runs them. */
class CliTest {
    static final Path SHARED = Path.of(System.getProperty("jtune.shared", "../shared"));
    static final String TINY = SHARED.resolve("models/tiny-llama").toString();
    static final String REF = SHARED.resolve("models/jtune-ref-llama-13m").toString();

    record Run(int exit, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cli = new CommandLine(new Main());
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int exit = Main.configure(cli).execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    static String csv(long[] ids) {
        return Arrays.stream(ids).mapToObj(Long::toString).collect(Collectors.joining(","));
    }

    @Test
    void infoDescribesTheModel() {
        Run r = run("info", "-m", REF);
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("LlamaForCausalLM"), r.out());
        assertTrue(r.out().contains("BF16"), r.out());
        assertTrue(r.out().contains("chat template"), r.out());
        assertTrue(r.out().contains("per 1,024 tokens (bf16, as the model was published"), r.out());
    }

    @Test
    void benchReportsSpeedAndDecodeAllocation() {
        Run r = run("bench", "-m", TINY, "--prompt", "4", "--gen", "4", "--repeat", "1", "--no-machine", "--threads", "2");
        assertEquals(0, r.exit(), r.err());
        for (String line : new String[] {"KV cache F32", "prefill   4 tokens:", "decode    4 tokens:",
                "alloc     decode allocated ", "memory    peak RSS"}) {
            assertTrue(r.out().contains(line), line + " missing from:\n" + r.out());
        }
        // with the machine probes: decode is judged against the weight pages' bandwidth probed after each run
        Run probed = run("bench", "-m", TINY, "--prompt", "4", "--gen", "4", "--repeat", "2", "--threads", "2", "--samples");
        assertEquals(0, probed.exit(), probed.err());
        assertTrue(probed.out().matches("(?s).*decode    4 tokens: .* \\(\\d+ % of the weight pages' read bandwidth: each run "
                + "against the probe right after it, median of 2 runs; best run \\d+ % of the 1 GiB buffer's\\).*"), probed.out());
        assertEquals(2, probed.out().split("sample weight-pages ", -1).length - 1, probed.out());
        Run bf16 = run("bench", "-m", TINY, "--prompt", "4", "--gen", "4", "--repeat", "1", "--no-machine", "--kv-cache", "bf16");
        assertEquals(0, bf16.exit(), bf16.err());
        assertTrue(bf16.out().contains("KV cache BF16") && bf16.out().contains("decode    4 tokens:"), bf16.out());
        Run bad = run("bench", "-m", TINY, "--repeat", "0");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("--repeat must be at least 1") || bad.err().contains("at least 1, got"), bad.err());
    }

    @Test
    void generateWithIdsReproducesTheReferenceGreedyTokens() {
        try (SafetensorsFile g = SafetensorsFile.open(SHARED.resolve("golden/tiny-llama.safetensors"))) {
            long[] expected = g.readLongs("greedy.0");
            Run r = run("generate", "-m", TINY, "--ids", csv(g.readLongs("input_ids.0")), "-n",
                    Integer.toString(expected.length), "--ignore-eos");
            assertEquals(0, r.exit(), r.err());
            assertEquals(csv(expected), r.out().strip());
        }
    }

    @Test
    void scoreDumpsLogitsEqualToTheReference(@TempDir Path dir) {
        Path dump = dir.resolve("logits.safetensors");
        try (SafetensorsFile g = SafetensorsFile.open(SHARED.resolve("golden/tiny-llama.safetensors"))) {
            Run r = run("score", "-m", TINY, "--ids", csv(g.readLongs("input_ids.0")), "--dump-logits", dump.toString());
            assertEquals(0, r.exit(), r.err());
            assertTrue(r.out().contains("perplexity"), r.out());
            float[] ref = g.readFloats("logits.0");
            try (SafetensorsFile d = SafetensorsFile.open(dump)) {
                float[] got = d.readFloats("logits");
                assertEquals(ref.length, got.length);
                double maxDiff = 0, maxRef = 0;
                for (int i = 0; i < ref.length; i++) {
                    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
                    maxRef = Math.max(maxRef, Math.abs(ref[i]));
                }
                assertTrue(maxDiff <= 1e-4 * maxRef, "max diff " + maxDiff);
            }
        }
    }

    @Test
    void generateStreamsTextFromAPrompt() {
        Run r = run("generate", "-m", REF, "-p", "The patient", "-n", "12", "--stats");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().startsWith("The patient") && r.out().length() > "The patient".length() + 3, r.out());
        assertTrue(r.err().contains("tok/s decode"), r.err());
    }

    /**
     * A bf16 KV cache gives the f32 cache's greedy text on the trained model, and is what that model (published in
     * bfloat16) gets by default; an unknown precision is a clear error.
     */
    @Test
    void generateWithABf16KvCache() {
        Run f32 = run("generate", "-m", REF, "-p", "The patient", "-n", "16", "--temperature", "0", "--kv-cache", "f32");
        Run bf16 = run("generate", "-m", REF, "-p", "The patient", "-n", "16", "--temperature", "0", "--kv-cache", "bf16");
        Run auto = run("generate", "-m", REF, "-p", "The patient", "-n", "16", "--temperature", "0");
        assertEquals(0, bf16.exit(), bf16.err());
        assertEquals(f32.out(), bf16.out());
        assertEquals(f32.out(), auto.out());
        Run bench = run("bench", "-m", REF, "--prompt", "4", "--gen", "2", "--repeat", "1", "--no-machine");
        assertTrue(bench.out().contains("KV cache BF16"), bench.out());
        Run bad = run("generate", "-m", REF, "-p", "The patient", "--kv-cache", "f16");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("--kv-cache takes auto, f32 or bf16"), bad.err());
    }

    @Test
    void chatAnswersAndRemembersTheConversation() {
        InputStream stdin = System.in;
        try {
            System.setIn(new ByteArrayInputStream("What is a fever?\nAnd how is it treated?\n/exit\n"
                    .getBytes(StandardCharsets.UTF_8)));
            Run r = run("chat", "-m", REF, "-n", "24", "--seed", "3");
            assertEquals(0, r.exit(), r.err());
            long prompts = r.out().chars().filter(c -> c == '>').count();
            assertTrue(prompts >= 3, r.out());
            assertTrue(r.out().replace("> ", "").strip().length() > 40, r.out());
        } finally {
            System.setIn(stdin);
        }
    }

    @Test
    void promptLongerThanTheContextIsAClearError() {
        Run r = run("generate", "-m", TINY, "--ids", "1,2,3,4,5,6,7,8,9,10", "--max-context", "8", "-n", "4");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--truncate"), r.err());
        Run t = run("generate", "-m", TINY, "--ids", "1,2,3,4,5,6,7,8,9,10", "--max-context", "8", "-n", "4",
                "--truncate", "--ignore-eos");
        assertEquals(0, t.exit(), t.err());
        assertEquals(4, t.out().strip().split(",").length, t.out());
    }

    @Test
    void missingModelIsAClearError() {
        Run r = run("info", "-m", "/nonexistent/model");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("does not exist"), r.err());
    }

    @Test
    void everyRegisteredFamilyRunsInfoGenerateAndScore() {
        for (String m : new String[] {"tiny-gpt2", "tiny-gpt-neox", "tiny-opt", "tiny-opt-postln-proj", "tiny-qwen2",
                "tiny-llama-bf16-tied-llama3rope", "tiny-gpt-neox-f16-sequential"}) {
            String dir = SHARED.resolve("models/" + m).toString();
            assertEquals(0, run("info", "-m", dir).exit(), m);
            Run g = run("generate", "-m", dir, "--ids", "3,17,42", "-n", "5", "--ignore-eos");
            assertEquals(0, g.exit(), m + ": " + g.err());
            assertEquals(5, g.out().strip().split(",").length, m + ": " + g.out());
            assertEquals(0, run("score", "-m", dir, "--ids", "3,17,42,9").exit(), m);
        }
    }
}
