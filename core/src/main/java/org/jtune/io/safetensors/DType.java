package org.jtune.io.safetensors;

// TEMPORARY placeholder until the safetensors branch lands (same API).
public enum DType {
    F64(8), F32(4), F16(2), BF16(2), I64(8), I32(4), I16(2), I8(1), U8(1), BOOL(1);
    private final int size;
    DType(int size) { this.size = size; }
    public int byteSize() { return size; }
    public String safetensorsName() { return name(); }
    public static DType fromSafetensorsName(String s) { return valueOf(s); }
    public boolean isFloatingPoint() { return this == F64 || this == F32 || this == F16 || this == BF16; }
}
