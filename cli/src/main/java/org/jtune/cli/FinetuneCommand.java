package org.jtune.cli;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.jtune.train.FineTune;
import org.jtune.train.FineTuneConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code jtune finetune}: LoRA or full fine-tuning from a JSONL/JSON data file. Every setting can
 * come from {@code --config FILE} (JSON or YAML, same names as the flags); flags win.
 */
@Command(name = "finetune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Fine-tune a model (LoRA or full) on JSONL data; writes an adapter (PEFT format) or a model.",
                "Data shapes: {\"text\"}, {\"prompt\",\"completion\"}, Alpaca {\"instruction\",\"input\",\"output\"},",
                "chat {\"messages\":[...]}, ShareGPT {\"conversations\":[...]}; loss on responses only by default."})
final class FinetuneCommand implements Callable<Integer> {
    @Option(names = "--config", paramLabel = "FILE", description = "JSON or YAML file with settings (flags override it)")
    Path config;

    @Option(names = {"-m", "--model"}, paramLabel = "DIR") String model;
    @Option(names = "--data", paramLabel = "FILE") String data;
    @Option(names = {"-o", "--output"}, paramLabel = "DIR", description = "run directory (default runs/<model>-<method>)") String output;
    @Option(names = "--method", paramLabel = "lora|full") String method;
    @Option(names = "--resume", description = "continue from the newest checkpoint in the output directory") boolean resume;
    @Option(names = "--epochs") Integer epochs;
    @Option(names = "--max-steps", description = "stop after this many optimizer steps (overrides --epochs)") Long maxSteps;
    @Option(names = "--batch-size") Integer batchSize;
    @Option(names = "--grad-accum", description = "batches per optimizer step") Integer gradAccum;
    @Option(names = "--max-length", description = "tokens per example (longer ones are cut)") Integer maxLength;
    @Option(names = "--pack", description = "pack examples into rows of exactly --max-length tokens") Boolean pack;
    @Option(names = "--lr", description = "peak learning rate (default 2e-4 LoRA, 2e-5 full)") Double lr;
    @Option(names = "--schedule", description = "cosine, linear or constant") String schedule;
    @Option(names = "--warmup-steps") Long warmupSteps;
    @Option(names = "--min-lr-ratio") Double minLrRatio;
    @Option(names = "--weight-decay") Double weightDecay;
    @Option(names = "--max-grad-norm", description = "clip the global gradient norm (0 = off)") Double maxGradNorm;
    @Option(names = "--lora-r") Integer loraR;
    @Option(names = "--lora-alpha") Double loraAlpha;
    @Option(names = "--lora-dropout") Double loraDropout;
    @Option(names = "--target-modules", split = ",", description = "LoRA targets by module-name suffix (default: the attention projections)") List<String> targetModules;
    @Option(names = "--val-fraction") Double valFraction;
    @Option(names = "--val-count") Integer valCount;
    @Option(names = "--eval-every", description = "steps between validation losses") Integer evalEvery;
    @Option(names = "--save-every", description = "steps between checkpoints") Integer saveEvery;
    @Option(names = "--seed") Long seed;
    @Option(names = "--train-on-prompt", description = "put loss on prompt tokens too") Boolean trainOnPrompt;
    @Option(names = "--skip-malformed", description = "skip malformed data lines instead of stopping") Boolean skipMalformed;
    @Option(names = "--prompt-format", description = "auto (chat template if the model has one), chat or alpaca") String promptFormat;

    @Override
    public Integer call() {
        FineTuneConfig cfg = FineTuneConfig.defaults();
        if (config != null) {
            cfg = cfg.with(FineTuneConfig.readFile(config));
        }
        Map<String, Object> flags = new LinkedHashMap<>();
        put(flags, "model", model);
        put(flags, "data", data);
        put(flags, "output", output);
        put(flags, "method", method);
        put(flags, "epochs", epochs);
        put(flags, "maxSteps", maxSteps);
        put(flags, "batchSize", batchSize);
        put(flags, "gradAccum", gradAccum);
        put(flags, "maxLength", maxLength);
        put(flags, "pack", pack);
        put(flags, "lr", lr);
        put(flags, "schedule", schedule);
        put(flags, "warmupSteps", warmupSteps);
        put(flags, "minLrRatio", minLrRatio);
        put(flags, "weightDecay", weightDecay);
        put(flags, "maxGradNorm", maxGradNorm);
        put(flags, "loraR", loraR);
        put(flags, "loraAlpha", loraAlpha);
        put(flags, "loraDropout", loraDropout);
        put(flags, "targetModules", targetModules);
        put(flags, "valFraction", valFraction);
        put(flags, "valCount", valCount);
        put(flags, "evalEvery", evalEvery);
        put(flags, "saveEvery", saveEvery);
        put(flags, "seed", seed);
        put(flags, "trainOnPrompt", trainOnPrompt);
        put(flags, "skipMalformed", skipMalformed);
        put(flags, "promptFormat", promptFormat);
        cfg = cfg.with(flags);
        FineTune.Result r = FineTune.run(cfg, resume, 0, System.out);
        System.out.printf("done      %d steps, last training loss %.4f%s; outputs in %s%n", r.steps(), r.lastTrainLoss(),
                Double.isNaN(r.finalValLoss()) ? "" : String.format(", validation loss %.4f -> %.4f", r.initialValLoss(), r.finalValLoss()),
                r.output());
        return 0;
    }

    private static void put(Map<String, Object> m, String key, Object value) {
        if (value != null) {
            m.put(key, value);
        }
    }
}
