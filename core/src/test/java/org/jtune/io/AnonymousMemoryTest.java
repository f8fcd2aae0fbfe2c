package org.jtune.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class AnonymousMemoryTest {
    @Test
    void givesZeroedWritableMemoryFreedWithItsArena() {
        long bytes = (5L << 20) + 123;
        MemorySegment m;
        try (Arena arena = Arena.ofShared()) {
            m = AnonymousMemory.allocate(arena, bytes);
            assertEquals(bytes, m.byteSize());
            if (System.getProperty("os.name").startsWith("Linux")) {
                assertEquals(0, m.address() % (2L << 20), "mapped at a huge-page boundary");
            }
            for (long i = 0; i < bytes; i += 4096) {
                assertEquals(0, m.get(ValueLayout.JAVA_BYTE, i));
                m.set(ValueLayout.JAVA_BYTE, i, (byte) 7);
            }
            m.set(ValueLayout.JAVA_BYTE, bytes - 1, (byte) 9);
            assertEquals(9, m.get(ValueLayout.JAVA_BYTE, bytes - 1));
        }
        MemorySegment closed = m;
        assertThrows(IllegalStateException.class, () -> closed.get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void knowsTheAvailableMemory() {
        assertTrue(AnonymousMemory.availableBytes() > 0);
    }
}
