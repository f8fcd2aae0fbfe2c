package org.jtune.io.safetensors;

import java.util.Arrays;
import java.util.stream.Collectors;
import org.jtune.JTuneException;

/**
 * The element types a safetensors file can hold that jtune understands, with their on-disk width.
 * The names are the safetensors header spellings; anything else (F8_E4M3, U16, complex...) is
 * rejected when the header is read rather than misread later.
 */
public enum DType {
    F64(8, true),
    F32(4, true),
    F16(2, true),
    BF16(2, true),
    I64(8, false),
    I32(4, false),
    I16(2, false),
    I8(1, false),
    U8(1, false),
    BOOL(1, false);

    private final int byteSize;
    private final boolean floatingPoint;

    DType(int byteSize, boolean floatingPoint) {
        this.byteSize = byteSize;
        this.floatingPoint = floatingPoint;
    }

    /** Bytes per element on disk. */
    public int byteSize() {
        return byteSize;
    }

    /** The spelling used in the safetensors header, e.g. {@code "BF16"}. */
    public String safetensorsName() {
        return name();
    }

    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    /** Parses a header dtype; unknown names fail with the list of known ones. */
    public static DType fromSafetensorsName(String s) {
        if (s != null) {
            for (DType d : values()) {
                if (d.name().equals(s)) {
                    return d;
                }
            }
        }
        String known = Arrays.stream(values()).map(DType::safetensorsName).collect(Collectors.joining(", "));
        throw new JTuneException("unknown safetensors dtype \"" + s + "\"; jtune knows " + known
                + " (8-bit floats, U16/U32/U64 and complex types are not supported)");
    }
}
