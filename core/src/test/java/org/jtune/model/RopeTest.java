package org.jtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.jtune.config.HfConfig;
import org.junit.jupiter.api.Test;

class RopeTest {
    static HfConfig config(String json) {
        return HfConfig.parse(Path.of("config.json"), json);
    }

    @Test
    void inverseFrequenciesFollowHf() {
        Rope r = Rope.fromConfig(config("{}"), 8, 10000);
        // 1 / 10000^(2i/8) for i = 0..3
        assertEquals(1.0f, r.invFreq[0]);
        assertEquals(0.1f, r.invFreq[1], 1e-7);
        assertEquals(0.01f, r.invFreq[2], 1e-8);
        assertEquals(0.001f, r.invFreq[3], 1e-9);
    }

    @Test
    void linearScalingDividesPositions() {
        Rope plain = Rope.fromConfig(config("{}"), 8, 10000);
        Rope scaled = Rope.fromConfig(config("{\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}}"), 8, 10000);
        float[][] a = plain.tables(9), b = scaled.tables(9);
        // position 8 scaled by 4 is position 2 unscaled
        for (int i = 0; i < 4; i++) {
            assertEquals(a[0][2 * 4 + i], b[0][8 * 4 + i], 1e-6);
            assertEquals(a[1][2 * 4 + i], b[1][8 * 4 + i], 1e-6);
        }
    }

    @Test
    void llama3ScalingKeepsHighFrequenciesAndDividesLowOnes() {
        Rope plain = Rope.fromConfig(config("{}"), 128, 500000);
        Rope l3 = Rope.fromConfig(config("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                + " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}"), 128, 500000);
        assertEquals(plain.invFreq[0], l3.invFreq[0]);                 // wavelength 2*pi: untouched
        assertEquals(plain.invFreq[63] / 8, l3.invFreq[63], 1e-12);   // longest wavelength: divided by factor
    }
}
