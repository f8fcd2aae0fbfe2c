package org.jtune.cli;

import java.io.PrintWriter;
import java.util.Map;
import java.util.concurrent.Callable;
import org.jtune.infer.Engine;
import org.jtune.io.safetensors.DType;
import org.jtune.kernel.KernelProvider;
import org.jtune.kernel.WorkerPool;
import org.jtune.model.ModelInfo;
import org.jtune.model.WeightLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code jtune info}: what a model directory holds and what running it costs. */
@Command(name = "info", mixinStandardHelpOptions = true, description = "Describe a model: architecture, parameters, dtypes, memory.")
final class InfoCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        // the weights as stored: describing a model is no reason to copy it into the decode layout
        try (Engine engine = Engine.load(modelOptions.model, modelOptions.adapter, WeightLoader.Options.INFERENCE)) {
            ModelInfo i = engine.model().info();
            out.printf("model            %s%n", modelOptions.model);
            out.printf("architecture     %s (model_type %s)%n", i.architecture(), i.modelType());
            out.printf("parameters       %,d (%.1f M)%n", i.parameterCount(), i.parameterCount() / 1e6);
            out.printf("layers           %d, hidden %d, heads %d, kv heads %d, head dim %d%n", i.numLayers(), i.hiddenSize(),
                    i.numHeads(), i.numKvHeads(), i.headDim());
            out.printf("vocabulary       %,d%n", i.vocabSize());
            out.printf("max context      %,d tokens%n", i.maxPositionEmbeddings());
            for (Map.Entry<String, Long> e : i.weightBytesByDtype().entrySet()) {
                out.printf("weights %-8s %s%n", e.getKey(), bytes(e.getValue()));
            }
            boolean bf16Cache = engine.defaultKvCache() == DType.BF16;
            long cache = i.kvCacheBytes(1024);   // f32
            out.printf("memory           weights %s (inference copies them, see README), KV cache %s per 1,024 tokens "
                    + "(%s)%n", bytes(i.weightBytes()), bytes(bf16Cache ? cache / 2 : cache),
                    bf16Cache ? "bf16, as the model was published; twice that with --kv-cache f32"
                            : "f32; half that with --kv-cache bf16");
            out.printf("tokenizer        %s%n", engine.tokenizer().map(t -> "yes, vocabulary " + t.vocabSize()
                    + (t.chatTemplate().isPresent() ? ", chat template" : ", no chat template")).orElse("none (drive it with --ids)"));
            out.printf("eos token ids    %s%n", engine.eosIds());
            out.printf("kernels          %s, %d threads%n", KernelProvider.get().name(), WorkerPool.shared().threads());
            out.flush();
            return 0;
        }
    }

    static String bytes(long b) {
        if (b >= 1L << 30) {
            return String.format("%.2f GiB", b / (double) (1L << 30));
        }
        if (b >= 1L << 20) {
            return String.format("%.1f MiB", b / (double) (1L << 20));
        }
        return String.format("%.1f KiB", b / 1024.0);
    }
}
