package org.jtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.jtune.JTuneException;
import org.jtune.io.safetensors.DType;
import org.jtune.io.safetensors.HalfFloats;
import org.junit.jupiter.api.Test;

class KvCacheTest {
    /** A bf16 cache holds each row rounded to nearest-even, two values per int, at the f32 cache's element index / 2. */
    @Test
    void bf16RowsArePackedRoundedPairs() {
        int layers = 2, maxSeq = 5, kvHeads = 3, headDim = 6, kvd = kvHeads * headDim;
        KvCache f32 = new KvCache(layers, maxSeq, kvHeads, headDim);
        KvCache bf16 = new KvCache(layers, maxSeq, kvHeads, headDim, DType.BF16);
        assertNull(bf16.keys);
        assertNull(f32.packedKeys);
        Random rnd = new Random(3);
        float[] k = new float[2 * kvd], v = new float[2 * kvd];
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) rnd.nextGaussian();
            v[i] = (float) rnd.nextGaussian();
        }
        f32.write(1, k, v, 2, 2);
        bf16.write(1, k, v, 2, 2);
        for (int t = 0; t < 2; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int at = f32.index(h, 2 + t);
                for (int e = 0; e < headDim; e++) {
                    int packedK = bf16.packedKeys[1][(at + e) / 2], packedV = bf16.packedValues[1][(at + e) / 2];
                    short wantK = HalfFloats.floatToBf16(f32.keys[1][at + e]);
                    short wantV = HalfFloats.floatToBf16(f32.values[1][at + e]);
                    int shift = e % 2 == 0 ? 0 : 16;
                    assertEquals(wantK, (short) (packedK >>> shift), "key t=" + t + " h=" + h + " e=" + e);
                    assertEquals(wantV, (short) (packedV >>> shift), "value t=" + t + " h=" + h + " e=" + e);
                }
            }
        }
    }

    @Test
    void rejectsWhatItCannotHold() {
        JTuneException odd = assertThrows(JTuneException.class,
                () -> new KvCache(1, 4, 1, 5, DType.BF16));
        assertTrue(odd.getMessage().contains("even head width"), odd.getMessage());
        IllegalArgumentException f16 = assertThrows(IllegalArgumentException.class,
                () -> new KvCache(1, 4, 1, 4, DType.F16));
        assertTrue(f16.getMessage().contains("f32 or bf16"), f16.getMessage());
    }
}
