package org.jtune.bench;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The run settings every kernel benchmark shares (JMH's annotations are inherited): average time in
 * microseconds, and a forked JVM with the flags the launcher and the tests pass (pom.xml {@code <jvm.flags>}:
 * the Vector API module, and the inlining commands that keep the kernels from boxing vectors).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-XX:CompileCommand=quiet", "-XX:CompileCommand=dontinline,org.jtune.kernel.VectorKernels::*",
        "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::fold*", "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::merge*",
        "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::sum", "-XX:CompileCommand=inline,org.jtune.kernel.VectorMath::exp"})
public abstract class KernelBenchmark {
}
