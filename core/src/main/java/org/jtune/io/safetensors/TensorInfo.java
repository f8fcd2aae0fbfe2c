package org.jtune.io.safetensors;

import java.util.Arrays;
import java.util.Objects;

/**
 * One header entry of a safetensors file: name, dtype, shape and the byte range
 * {@code [begin, end)} of its data. Offsets are relative to the start of the data section (the
 * byte after the header), exactly as the file stores them. The shape array is copied in and out
 * so an info can be shared freely.
 */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {

    public TensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements: the product of the shape (1 for a scalar). */
    public long numel() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public int rank() {
        return shape.length;
    }

    /** Size of the data range, {@code end - begin}; validated to equal numel × dtype size on open. */
    public long byteSize() {
        return end - begin;
    }

    /** Size of one dimension; negative indices count from the end, like PyTorch. */
    public long dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    // Records compare arrays by identity; two infos describing the same tensor should be equal.
    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
                && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, dtype, Arrays.hashCode(shape), begin, end);
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
    }
}
