package org.jtune.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

/** Expected values worked out by hand from HF's lr_lambda functions (transformers/optimization.py). */
class LrScheduleTest {
    static final double LR = 2e-4;

    @Test
    void warmupStartsAtZeroOnFirstOptimizerStep() {
        LrSchedule s = LrSchedule.cosine(LR, 10, 100, 0);
        assertEquals(0.0, s.lr(0));
        assertEquals(LR * 0.1, s.lr(1), 1e-20);
        assertEquals(LR * 0.9, s.lr(9), 1e-20);
        assertEquals(LR, s.lr(10), 1e-20); // progress 0: 0.5·(1+cos 0) = 1
    }

    @Test
    void cosineDecaysToZeroOrToMinRatio() {
        LrSchedule s = LrSchedule.cosine(LR, 10, 100, 0);
        // step 55: progress 45/90 = 0.5 -> 0.5·(1+cos(π/2)) = 0.5
        assertEquals(LR * 0.5, s.lr(55), 1e-18);
        // step 40: progress 1/3 -> 0.5·(1+cos(π/3)) = 0.75
        assertEquals(LR * 0.75, s.lr(40), 1e-18);
        assertEquals(0.0, s.lr(100), 1e-18);
        LrSchedule floor = LrSchedule.cosine(LR, 10, 100, 0.1);
        assertEquals(LR * (0.5 * 0.9 + 0.1), floor.lr(55), 1e-18);
        assertEquals(LR * 0.1, floor.lr(100), 1e-18);
        assertEquals(LR, floor.lr(10), 1e-18);
    }

    @Test
    void linearDecaysToZeroAfterWarmup() {
        LrSchedule s = LrSchedule.linear(LR, 4, 20);
        assertEquals(0.0, s.lr(0));
        assertEquals(LR * 0.5, s.lr(2), 1e-20);
        assertEquals(LR, s.lr(4), 1e-20); // (20-4)/16
        assertEquals(LR * 6 / 16, s.lr(14), 1e-20);
        assertEquals(0.0, s.lr(20));
        assertEquals(0.0, s.lr(25)); // clamped at 0
    }

    @Test
    void constantHoldsAfterWarmup() {
        LrSchedule s = LrSchedule.constant(LR, 3);
        assertEquals(0.0, s.lr(0));
        assertEquals(LR * 2 / 3, s.lr(2), 1e-20);
        assertEquals(LR, s.lr(3));
        assertEquals(LR, s.lr(1_000_000));
        assertEquals(LR, LrSchedule.constant(LR, 0).lr(0));
    }

    @Test
    void noWarmupStartsAtFullRate() {
        assertEquals(LR, LrSchedule.cosine(LR, 0, 50, 0).lr(0));
        assertEquals(LR, LrSchedule.linear(LR, 0, 50).lr(0));
        assertEquals(LR * 49 / 50, LrSchedule.linear(LR, 0, 50).lr(1), 1e-20);
    }

    @Test
    void parsesKindsAndRejectsBadConfig() {
        assertEquals(LrSchedule.Kind.COSINE, LrSchedule.Kind.parse("Cosine"));
        assertThrows(JTuneException.class, () -> LrSchedule.Kind.parse("exponential"));
        assertThrows(JTuneException.class, () -> LrSchedule.linear(LR, 0, 0));
        assertThrows(JTuneException.class, () -> LrSchedule.cosine(LR, 0, 10, 1.5));
    }
}
