package org.jtune.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import org.jtune.infer.Engine;
import org.jtune.infer.Session;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.Matrix;
import org.jtune.kernel.ReadProbe;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.LanguageModel;
import org.jtune.model.Linear;
import org.jtune.model.ModelInfo;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code jtune bench}: prefill and decode speed of a model, judged against this machine's measured
 * read bandwidth (decode streams every weight once per token) and FMA peak (prefill is matrix
 * products), both measured in the same run.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure prefill and decode speed against the machine's bandwidth and FMA peak.")
final class BenchCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, paramLabel = "DIR", description = "model directory (not needed with --blas-compare)")
    Path model;

    @Option(names = "--threads", paramLabel = "N", description = "worker threads (default: all cores)")
    Integer threads;

    @Option(names = "--prompt", defaultValue = "128", paramLabel = "N", description = "prompt tokens to prefill (default ${DEFAULT-VALUE})")
    int prompt;

    @Option(names = "--gen", defaultValue = "128", paramLabel = "N", description = "tokens to decode (default ${DEFAULT-VALUE})")
    int gen;

    @Option(names = "--repeat", defaultValue = "3", paramLabel = "N", description = "runs; the best speeds are reported, decode's share of the bandwidth as the median over runs (default ${DEFAULT-VALUE})")
    int repeat;

    @Mixin
    KvCacheOption kvCache;

    @Option(names = "--no-machine", description = "skip measuring the machine's bandwidth and FMA peak")
    boolean noMachine;

    @Option(names = "--samples", description = "also print every repetition's prefill and decode tokens/s, and the weight pages' GB/s probed after it (for scripts)")
    boolean samples;

    @Option(names = "--train", paramLabel = "lora|full", description = "measure training steps instead of generation")
    String train;

    @Option(names = "--train-batch", defaultValue = "4", paramLabel = "N", description = "sequences per training step (default ${DEFAULT-VALUE})")
    int trainBatch;

    @Option(names = "--train-length", defaultValue = "256", paramLabel = "N", description = "tokens per sequence (default ${DEFAULT-VALUE})")
    int trainLength;

    @Option(names = "--train-steps", defaultValue = "3", paramLabel = "N", description = "measured steps after one warm-up step (default ${DEFAULT-VALUE})")
    int trainSteps;

    @Option(names = "--blas-compare", description = "compare the pure-Java and the OpenBLAS matmul on prefill/training shapes (no model needed)")
    boolean blasCompare;

    @Option(names = "--blas-shapes", defaultValue = "576x1536,1536x576,2048x5632,5632x2048", paramLabel = "RxC,...",
            description = "weight shapes (rows x cols) for --blas-compare (default ${DEFAULT-VALUE})")
    String blasShapes;

    @Option(names = "--blas-tokens", defaultValue = "128,1024", paramLabel = "N,...", description = "token counts for --blas-compare (default ${DEFAULT-VALUE})")
    String blasTokens;

    @Option(names = "--blas-dtypes", defaultValue = "F32,BF16", paramLabel = "DT,...", description = "weight dtypes for --blas-compare (default ${DEFAULT-VALUE})")
    String blasDtypes;

    @Option(names = "--blas-seconds", defaultValue = "0.3", paramLabel = "S", description = "timing per product and side for --blas-compare (default ${DEFAULT-VALUE})")
    double blasSeconds;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        if (threads != null) {
            System.setProperty("jtune.threads", Integer.toString(threads));
        }
        PrintWriter out = spec.commandLine().getOut();
        WorkerPool pool = WorkerPool.shared();
        if (blasCompare) {
            BlasCompare.run(out, blasShapes, blasTokens, blasDtypes, blasSeconds);
            return 0;
        }
        if (model == null) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "Missing required option: '--model=DIR'");
        }
        if (train != null) {
            TrainingBench.run(model, train, trainBatch, trainLength, trainSteps, out);
            out.printf("memory    peak RSS %s%n", peakRss());
            out.flush();
            return 0;
        }
        if (prompt < 1 || gen < 1 || repeat < 1) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--prompt, --gen and --repeat must be at "
                    + "least 1, got " + prompt + ", " + gen + " and " + repeat);
        }
        try (Engine engine = Engine.load(model)) {
            LanguageModel m = engine.model();
            ModelInfo info = m.info();
            long layerBytes = 0, layerElems = 0;
            java.util.List<java.lang.foreign.MemorySegment> weightPages = new java.util.ArrayList<>();   // what decode reads
            for (Linear l : m.linearLayers()) {
                layerBytes += l.weight().byteSize();
                layerElems += (long) l.outFeatures() * l.inFeatures();
                weightPages.add(l.weight().data());
            }
            Matrix head = m.outputHead();
            weightPages.add(head.data());
            long bytesPerToken = layerBytes + head.byteSize();
            out.printf("model     %s: %s, %,d parameters, weights %s, kernels %s, KV cache %s%n", model.getFileName(),
                    info.architecture(), info.parameterCount(), info.weightBytesByDtype().keySet(), KernelProvider.get().name(),
                    kvCache.dtype(engine));

            int[] ids = new int[prompt + gen];
            SplittableRandom rnd = new SplittableRandom(1);
            for (int i = 0; i < ids.length; i++) {
                ids[i] = 3 + rnd.nextInt(info.vocabSize() - 3);
            }
            double bestPrefill = Double.MAX_VALUE, bestDecode = Double.MAX_VALUE;
            long leastDecodeAllocation = Long.MAX_VALUE;
            // each measured run's decode GB/s over the weight pages' read bandwidth probed right after it: on
            // this VM the same memory reads at about 35 or about 55 GB/s from one process (or minute) to the
            // next, so decode is judged against a probe taken next to it, not against one taken minutes apart
            double[] pagesGBps = new double[repeat], pairedShare = new double[repeat];
            try (Session s = new Session(m, prompt + gen + 1, prompt, kvCache.dtype(engine))) {
                for (int r = 0; r < repeat + 1; r++) {   // the first run warms up the JIT
                    s.reset();
                    long t0 = System.nanoTime();
                    s.feed(ids, 0, prompt);
                    long t1 = System.nanoTime();
                    long allocated = heapAllocatedByAllThreads();
                    for (int i = 0; i < gen; i++) {
                        s.feed(ids[prompt + i]);
                    }
                    allocated = heapAllocatedByAllThreads() - allocated;
                    long t2 = System.nanoTime();
                    if (r == 0 && !noMachine) {
                        ReadProbe.streamBandwidth(pool, weightPages, 3);   // warms the probe's JIT up too
                    }
                    if (r > 0) {
                        bestPrefill = Math.min(bestPrefill, t1 - t0);
                        bestDecode = Math.min(bestDecode, t2 - t1);
                        leastDecodeAllocation = Math.min(leastDecodeAllocation, allocated);
                        if (!noMachine) {
                            pagesGBps[r - 1] = ReadProbe.streamBandwidth(pool, weightPages, 3);
                            pairedShare[r - 1] = (double) bytesPerToken * gen / (t2 - t1) / pagesGBps[r - 1];
                        }
                        if (samples) {
                            out.printf("sample prefill %.2f%nsample decode %.2f%n", prompt / ((t1 - t0) / 1e9),
                                    gen / ((t2 - t1) / 1e9));
                            if (!noMachine) {
                                out.printf("sample weight-pages %.2f%n", pagesGBps[r - 1]);
                            }
                        }
                    }
                }
            }
            String modelPeakRss = peakRss();   // before the machine probe's 1 GiB buffer
            MachineProbe.Result machine = noMachine ? null : MachineProbe.measure(pool);
            if (machine != null) {
                out.printf("machine   %d threads, %d-bit vectors: read bandwidth %.1f GB/s (1 GiB buffer), %.1f GB/s "
                                + "(the model's weight pages, median of the probes after each run), FMA peak %.1f GFLOP/s (f32)%n",
                        machine.threads(), machine.vectorBits(), machine.readGBps(), median(pagesGBps), machine.fmaGflops());
            }
            double prefillTps = prompt / (bestPrefill / 1e9);
            double prefillGflops = (2.0 * layerElems * prompt + 2.0 * head.rows() * head.cols()) / bestPrefill;
            double decodeTps = gen / (bestDecode / 1e9);
            double decodeGBps = bytesPerToken * decodeTps / 1e9;
            out.printf("prefill   %d tokens: %.1f tokens/s, %.1f GFLOP/s in matmuls%s%n", prompt, prefillTps, prefillGflops,
                    machine == null ? "" : String.format(" (%.0f %% of FMA peak)", 100 * prefillGflops / machine.fmaGflops()));
            out.printf("decode    %d tokens: %.1f tokens/s, %.1f MiB of weights read per token, %.2f GB/s%s%n", gen, decodeTps,
                    bytesPerToken / 1048576.0, decodeGBps, machine == null ? "" : String.format(" (%.0f %% of the weight "
                            + "pages' read bandwidth: each run against the probe right after it, median of %d runs; "
                            + "best run %.0f %% of the 1 GiB buffer's)", 100 * median(pairedShare), repeat,
                            100 * decodeGBps / machine.readGBps()));
            // the decode loop must not allocate: a C2 compile that boxes Vector API values shows here as kilobytes
            // per token (see MatmulAllocationTest); the figure includes the counters' own snapshot, about 1 KB a run
            out.printf("alloc     decode allocated %,d bytes per token on the Java heap (all threads, least of %d runs)%n",
                    leastDecodeAllocation / gen, repeat);
            out.printf("memory    peak RSS %s (weights count once: copied at load, or mapped pages once touched), heap used %s%n",
                    modelPeakRss, InfoCommand.bytes(Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()));
            out.flush();
        }
        return 0;
    }

    /** The median of the values (the mean of the middle two for an even count). */
    static double median(double[] values) {
        double[] v = values.clone();
        java.util.Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    /** Bytes allocated on the Java heap so far by all live threads (JVMs without the counters: 0). */
    static long heapAllocatedByAllThreads() {
        if (!(java.lang.management.ManagementFactory.getThreadMXBean() instanceof com.sun.management.ThreadMXBean mx)
                || !mx.isThreadAllocatedMemorySupported() || !mx.isThreadAllocatedMemoryEnabled()) {
            return 0;
        }
        long total = 0;
        for (long bytes : mx.getThreadAllocatedBytes(mx.getAllThreadIds())) {
            total += Math.max(0, bytes);   // -1: a thread that ended meanwhile
        }
        return total;
    }

    static String peakRss() throws IOException {
        Path status = Path.of("/proc/self/status");
        if (!Files.exists(status)) {
            return "n/a";
        }
        for (String line : Files.readAllLines(status)) {
            if (line.startsWith("VmHWM:")) {
                long kb = Long.parseLong(line.replaceAll("[^0-9]", ""));
                return InfoCommand.bytes(kb * 1024);
            }
        }
        return "n/a";
    }
}
