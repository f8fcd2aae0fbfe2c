package org.jtune.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.jtune.peft.LoraModels;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code jtune merge}: fold a LoRA adapter into the base weights, writing a normal HF model directory. */
@Command(name = "merge", mixinStandardHelpOptions = true, description = "Merge a LoRA adapter into its base model.")
final class MergeCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "DIR") Path model;
    @Option(names = "--adapter", required = true, paramLabel = "DIR") Path adapter;
    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "new model directory (must not exist)") Path output;

    @Override
    public Integer call() {
        LoraModels.merge(model, adapter, output);
        System.out.println("wrote " + output);
        return 0;
    }
}
