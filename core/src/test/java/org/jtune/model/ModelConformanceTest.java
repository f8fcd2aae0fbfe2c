package org.jtune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.jtune.config.HfConfig;
import org.jtune.infer.Session;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.SafetensorsFile;
import org.jtune.io.safetensors.SafetensorsWriter;
import org.jtune.io.safetensors.TensorInfo;
import org.jtune.kernel.Matrix;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The checks every registered model family must pass, run over every model in ../shared/models
 * whose model_type is registered and that has a golden file: logits equal the independent PyTorch
 * reference, greedy decoding through the KV cache reproduces the reference tokens, and decoding with
 * the cache (one token at a time, or in uneven chunks) equals the full forward at every position.
 * Adding a family adds its models here without touching this file.
 */
class ModelConformanceTest {
    /** Max |ours - ref| relative to max |ref| per sequence, for fp32 compute. */
    static final double LOGITS_REL_TOL = 1e-4;
    /** The same with a bf16 KV cache: keys and values carry 8 significant bits instead of 24. */
    static final double BF16_KV_REL_TOL = 1e-2;

    static Stream<String> goldenModels() throws IOException {
        try (Stream<Path> dirs = Files.list(Shared.path("models"))) {
            return dirs.filter(d -> Files.exists(d.resolve("config.json")))
                    .filter(d -> Files.exists(Shared.path("golden/" + d.getFileName() + ".safetensors")))
                    .filter(d -> ModelRegistry.supportedModelTypes().contains(HfConfig.load(d).modelType()))
                    .map(d -> d.getFileName().toString()).sorted().toList().stream();
        }
    }

    static int[] ids(SafetensorsFile golden, String name) {
        return Arrays.stream(golden.readLongs(name)).mapToInt(Math::toIntExact).toArray();
    }

    static int sequenceCount(SafetensorsFile golden) {
        int n = 0;
        while (golden.contains("input_ids." + n)) {
            n++;
        }
        return n;
    }

    /**
     * The stored layout; the decode layout of inference sessions (weights copied to anonymous memory), as
     * Engine loads it; and the same with strips narrow enough that the wider matrices of most tiny models take
     * them (Matrix#withStrips): all must match the reference.
     */
    static final WeightLoader.Options[] LAYOUTS = {WeightLoader.Options.INFERENCE, WeightLoader.Options.DECODE,
            new WeightLoader.Options(false, WeightLoader.ActivationQuant.NONE, Matrix.STRIP_ALIGN)};

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenModels")
    void logitsMatchReference(String name) {
        for (WeightLoader.Options layout : LAYOUTS) {
            try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name), layout);
                 SafetensorsFile golden = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
                int vocab = model.info().vocabSize();
                int seqs = sequenceCount(golden);
                assertTrue(seqs > 0, "golden file has no sequences");
                boolean wide = model.linearLayers().stream().anyMatch(l -> l.inFeatures() > 2 * layout.decodeStrip());
                assertEquals(layout.decodeStrip() > 0 && wide,
                        model.linearLayers().stream().anyMatch(l -> l.weight().strip() > 0), "matrices in strips");
                assertTrue(layout.decodeStrip() == 0 || model.linearLayers().stream().noneMatch(l -> l.weight().data().isMapped()),
                        "the decode layout copies every weight out of the mapped file");
                for (int s = 0; s < seqs; s++) {
                    int[] ids = ids(golden, "input_ids." + s);
                    float[] ref = golden.readFloats("logits." + s);
                    float[] ours = new float[ids.length * vocab];
                    Session session = new Session(model, ids.length, 16);
                    session.feedAllLogits(ids, 0, ids.length, ours, 0);
                    double err = maxAbsDiff(ours, ref) / maxAbs(ref);
                    System.out.printf("%s sequence %d (%d tokens, strips %d): relative logits error %.2e%n", name, s,
                            ids.length, layout.decodeStrip(), err);
                    assertTrue(err <= LOGITS_REL_TOL, name + " sequence " + s + " strips " + layout.decodeStrip()
                            + ": relative logits error " + err);
                }
            }
        }
    }

    @Test
    void everyRegisteredFamilyHasAGoldenModel() throws IOException {
        java.util.Set<String> covered = new java.util.HashSet<>();
        for (String name : goldenModels().toList()) {
            covered.add(ModelRegistry.familyOf(HfConfig.load(Shared.path("models/" + name))).name());
        }
        for (ModelRegistry.Family f : ModelRegistry.FAMILIES) {
            assertTrue(covered.contains(f.name()), "family " + f.name() + " has no model with a golden file in ../shared");
        }
    }

    /** Rewrites the checkpoint as two shards plus an index with our writer, reloads it, and expects identical logits. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenModels")
    void roundTripThroughShardedCopyGivesIdenticalLogits(String name, @TempDir Path dir) throws IOException {
        Path src = Shared.path("models/" + name);
        Files.copy(src.resolve("config.json"), dir.resolve("config.json"));
        StringBuilder index = new StringBuilder("{\"metadata\": {}, \"weight_map\": {");
        try (SafetensorsFile f = SafetensorsFile.open(src.resolve("model.safetensors"))) {
            SafetensorsWriter[] shards = {new SafetensorsWriter(), new SafetensorsWriter()};
            int i = 0;
            for (TensorInfo t : f.tensors().values()) {
                String shard = "model-0000" + (i % 2 + 1) + "-of-00002.safetensors";
                shards[i % 2].add(t.name(), t.dtype(), t.shape(), f.data(t.name()));
                index.append(i == 0 ? "" : ", ").append('"').append(t.name()).append("\": \"").append(shard).append('"');
                i++;
            }
            shards[0].write(dir.resolve("model-00001-of-00002.safetensors"));
            shards[1].write(dir.resolve("model-00002-of-00002.safetensors"));
        }
        Files.writeString(dir.resolve("model.safetensors.index.json"), index.append("}}").toString());
        int[] ids = {1, 7, 42, 3, 99, 5};
        try (LanguageModel a = ModelRegistry.load(src); LanguageModel b = ModelRegistry.load(dir)) {
            int vocab = a.info().vocabSize();
            float[] la = new float[ids.length * vocab], lb = new float[ids.length * vocab];
            new Session(a, ids.length).feedAllLogits(ids, 0, ids.length, la, 0);
            new Session(b, ids.length).feedAllLogits(ids, 0, ids.length, lb, 0);
            assertArrayEquals(la, lb);
            assertEquals(a.info().parameterCount(), b.info().parameterCount());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenModels")
    void greedyTokensMatchReference(String name) {
        try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name));
             SafetensorsFile golden = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
            int[] prompt = ids(golden, "input_ids.0");
            int[] expected = ids(golden, "greedy.0");
            assertArrayEquals(expected, greedy(new Session(model, prompt.length + expected.length), prompt, expected.length));
        }
    }

    /** {@code count} tokens greedily decoded after {@code prompt}, each fed back as the next input. */
    static int[] greedy(Session session, int[] prompt, int count) {
        float[] logits = session.feed(prompt);
        int[] got = new int[count];
        for (int i = 0; i < count; i++) {
            got[i] = org.jtune.infer.Sampler.argmax(logits, logits.length);
            if (i + 1 < count) {
                logits = session.feed(got[i]);
            }
        }
        return got;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenModels")
    void decodeWithCacheMatchesFullForward(String name) {
        for (WeightLoader.Options layout : LAYOUTS) {
            try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name), layout);
                 SafetensorsFile golden = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
                String what = name + (layout.decodeStrip() > 0 ? " in the decode layout (strip " + layout.decodeStrip() + ")" : "");
                int[] ids = ids(golden, "input_ids." + (sequenceCount(golden) - 1));
                int vocab = model.info().vocabSize();
                float[] full = new float[ids.length * vocab];
                // one chunk of 53-64 tokens: its attention runs in blocks (Kernels#attendCausalBlock), which the
                // one-by-one and short-chunk passes below, token by token, check
                new Session(model, ids.length, ids.length).feedAllLogits(ids, 0, ids.length, full, 0);

                Session stepwise = new Session(model, ids.length, 1);
                for (int t = 0; t < ids.length; t++) {
                    float[] logits = stepwise.feed(ids[t]);
                    assertClose(full, t * vocab, logits, vocab, what + " one-by-one, position " + t);
                }
                // one-by-one with each token's attention split into parts of two positions and more (the
                // threads' split of a long context, DecoderState#attend), joined by their log-sum-exps
                ModelState split = model.newState(ids.length, 1);
                assertTrue(split instanceof DecoderState, name + ": a decoder state");
                ((DecoderState) split).attentionPartPositions(2);
                float[] splitLogits = new float[vocab];
                for (int t = 0; t < ids.length; t++) {
                    model.forward(split, ids, t, 1, splitLogits, false);
                    assertClose(full, t * vocab, splitLogits, vocab, what + " one-by-one in attention parts, position " + t);
                }
                int[] chunks = {3, 1, 7, 2, 5, 11, 4};
                Session chunked = new Session(model, ids.length, 11);
                float[] got = new float[ids.length * vocab];
                for (int off = 0, c = 0; off < ids.length; c++) {
                    int n = Math.min(chunks[c % chunks.length], ids.length - off);
                    chunked.feedAllLogits(ids, off, n, got, off * vocab);
                    off += n;
                }
                assertEquals(ids.length, chunked.length());
                assertClose(full, 0, got, full.length, what + " uneven chunks");
                // the same whole chunk with its attention token by token instead of in blocks
                ModelState perToken = model.newState(ids.length, ids.length);
                ((DecoderState) perToken).causalBlocks(false);
                float[] perTokenLogits = new float[ids.length * vocab];
                model.forward(perToken, ids, 0, ids.length, perTokenLogits, true);
                assertClose(full, 0, perTokenLogits, full.length, what + " whole chunk, attention token by token");
            }
        }
    }

    /**
     * A bf16 KV cache (keys and values rounded to 8 significant bits, {@link KvCache}) keeps every model's
     * decode close to the f32 full forward, one token at a time and in uneven chunks, and reproduces the
     * reference's greedy tokens; training refuses it.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenModels")
    void bf16KvCacheStaysCloseToF32(String name) {
        try (LanguageModel model = ModelRegistry.load(Shared.path("models/" + name), WeightLoader.Options.DECODE);
             SafetensorsFile golden = SafetensorsFile.open(Shared.path("golden/" + name + ".safetensors"))) {
            int[] ids = ids(golden, "input_ids." + (sequenceCount(golden) - 1));
            int vocab = model.info().vocabSize();
            float[] full = new float[ids.length * vocab];
            new Session(model, ids.length, ids.length).feedAllLogits(ids, 0, ids.length, full, 0);
            Session stepwise = new Session(model, ids.length, 1, DType.BF16);
            double worst = 0;
            for (int t = 0; t < ids.length; t++) {
                float[] logits = stepwise.feed(ids[t]);
                worst = Math.max(worst, relativeDiff(full, t * vocab, logits, vocab));
            }
            Session chunked = new Session(model, ids.length, 7, DType.BF16);
            float[] got = new float[ids.length * vocab];
            for (int off = 0; off < ids.length; off += 7) {
                int n = Math.min(7, ids.length - off);
                chunked.feedAllLogits(ids, off, n, got, off * vocab);
            }
            worst = Math.max(worst, relativeDiff(full, 0, got, full.length));
            System.out.printf("%s: bf16 KV cache, worst logits difference relative to max |logit| %.2e%n", name, worst);
            assertTrue(worst <= BF16_KV_REL_TOL, name + ": bf16 KV cache logits differ by " + worst);

            int[] prompt = ids(golden, "input_ids.0");
            int[] expected = ids(golden, "greedy.0");
            Session session = new Session(model, prompt.length + expected.length, Session.DEFAULT_MAX_CHUNK, DType.BF16);
            assertArrayEquals(expected, greedy(session, prompt, expected.length), name + ": greedy tokens with a bf16 KV cache");
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> model.newState(4, 4, new org.jtune.autograd.TrainingOps(org.jtune.kernel.KernelProvider.get(),
                            new org.jtune.autograd.Tape()), DType.BF16));
            assertTrue(e.getMessage().contains("training"), e.getMessage());
        }
    }

    /** Max |logits difference| relative to max |reference logit| (at least 1). */
    private static double relativeDiff(float[] ref, int refOff, float[] got, int n) {
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < n; i++) {
            maxRef = Math.max(maxRef, Math.abs(ref[refOff + i]));
            maxDiff = Math.max(maxDiff, Math.abs(ref[refOff + i] - got[i]));
        }
        return maxDiff / Math.max(1, maxRef);
    }

    private static void assertClose(float[] ref, int refOff, float[] got, int n, String what) {
        double rel = relativeDiff(ref, refOff, got, n);
        assertTrue(rel <= 1e-5, what + ": max diff " + rel + " of max(1, max |logit|)");
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertEquals(b.length, a.length);
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return m;
    }
}
