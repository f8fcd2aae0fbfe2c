package org.jtune.kernel;

/** A slice of data-parallel work: handle items {@code [from, to)}. Implementations are reused objects, so dispatching allocates nothing. */
@FunctionalInterface
public interface RangeTask {
    void run(int from, int to);
}
