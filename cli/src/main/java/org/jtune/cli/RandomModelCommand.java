package org.jtune.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.jtune.io.safetensors.DType;
import org.jtune.model.RandomModels;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code jtune random-model}: a random-weight checkpoint of a published shape, for benchmarks. */
@Command(name = "random-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight Llama-architecture model of a published shape (for speed measurements).")
final class RandomModelCommand implements Callable<Integer> {
    @Option(names = "--shape", required = true, paramLabel = "NAME", description = "smollm2-135m, tinyllama-1.1b or llama2-7b")
    String shape;

    @Option(names = "--dtype", defaultValue = "BF16", description = "F32, F16 or BF16 (default ${DEFAULT-VALUE})")
    DType dtype;

    @Option(names = "--seed", defaultValue = "0")
    long seed;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR")
    Path output;

    @Override
    public Integer call() {
        RandomModels.Shape s = RandomModels.preset(shape);
        System.out.printf("writing %s (%,d parameters, %s) to %s%n", s.name(), s.parameterCount(), dtype, output);
        RandomModels.write(s, dtype, seed, output);
        return 0;
    }
}
