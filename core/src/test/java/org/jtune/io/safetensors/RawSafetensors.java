package org.jtune.io.safetensors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes hand-made (often deliberately broken) safetensors files for the validation tests. */
final class RawSafetensors {
    private RawSafetensors() {}

    /** 8-byte LE length of {@code headerJson}, the header, then {@code dataBytes} bytes 0, 1, 2, ... */
    static Path write(Path file, String headerJson, int dataBytes) {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        return write(file, header.length, header, dataBytes);
    }

    /** Same, with an explicit (possibly lying) header length. */
    static Path write(Path file, long declaredHeaderLength, byte[] header, int dataBytes) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredHeaderLength).put(header);
        for (int i = 0; i < dataBytes; i++) {
            b.put((byte) i);
        }
        try {
            Files.write(file, b.array());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }
}
