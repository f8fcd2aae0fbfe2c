package org.jtune.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.jtune.JTuneException;
import org.jtune.quant.ModelQuantizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code jtune quantize}: write a quantized copy of a model that generate/chat/score/bench load directly. */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Quantize a model's weight matrices and write a new model directory.")
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "DIR")
    Path model;

    @Option(names = "--method", required = true, paramLabel = "METHOD", description = "int8-weight")
    String method;

    @Option(names = "--group-size", defaultValue = "32", paramLabel = "N",
            description = "input features sharing one scale (default ${DEFAULT-VALUE}, like llama.cpp's Q8_0); 0 = one scale per output channel")
    int groupSize;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "new model directory (must not exist)")
    Path output;

    @Override
    public Integer call() {
        if (!method.equals("int8-weight")) {
            throw new JTuneException("unknown --method \"" + method + "\"; supported: int8-weight");
        }
        if (groupSize < 0) {
            throw new JTuneException("--group-size must be 0 (per channel) or positive, got " + groupSize);
        }
        ModelQuantizer.int8Weights(model, output, groupSize);
        System.out.println("wrote " + output);
        return 0;
    }
}
