package org.jtune.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class GradientClippingTest {
    static Parameter param(String name, float... grad) {
        return new Parameter(name, new long[] {grad.length}, new float[grad.length], grad, false);
    }

    @Test
    void globalNormSpansAllParameters() {
        // 3-4-5 split over two tensors, plus a 12 in a third: sqrt(9 + 16 + 144) = 13
        List<Parameter> ps = List.of(param("a", 3), param("b", 0, 4), param("c", 12));
        assertEquals(13.0, GradientClipping.globalNorm(ps), 0);
    }

    @Test
    void clipsToTargetNormAndReturnsPreClipNorm() {
        List<Parameter> ps = List.of(param("a", 3), param("b", 0, 4), param("c", 12));
        double before = GradientClipping.clipByGlobalNorm(ps, 1.0);
        assertEquals(13.0, before, 0);
        // coefficient max/(norm + 1e-6), as torch.nn.utils.clip_grad_norm_
        assertEquals(1.0 * 13 / (13 + 1e-6), GradientClipping.globalNorm(ps), 1e-6);
        float c = (float) (1.0 / (13 + 1e-6));
        assertArrayEquals(new float[] {3 * c}, ps.get(0).grad());
        assertArrayEquals(new float[] {0, 4 * c}, ps.get(1).grad());
    }

    @Test
    void leavesGradientsBelowThresholdUntouched() {
        List<Parameter> ps = List.of(param("a", 0.3f, -0.4f));
        double before = GradientClipping.clipByGlobalNorm(ps, 1.0);
        assertEquals(0.5, before, 1e-7);
        assertArrayEquals(new float[] {0.3f, -0.4f}, ps.get(0).grad());
        // exactly at the threshold the coefficient is 1/(1 + 1e-6) < 1: torch scales, and so do we
        List<Parameter> at = List.of(param("a", 0.75f, 1f)); // norm 1.25 exactly
        GradientClipping.clipByGlobalNorm(at, 1.25);
        float c = (float) (1.25 / (1.25 + 1e-6));
        assertArrayEquals(new float[] {0.75f * c, 1f * c}, at.get(0).grad());
    }

    @Test
    void nonFiniteNormIsReportedWithoutTouchingGradients() {
        List<Parameter> ps = List.of(param("a", Float.NaN, 1));
        assertTrue(Double.isNaN(GradientClipping.clipByGlobalNorm(ps, 1.0)));
        assertEquals(1f, ps.get(0).grad()[1]);
    }

    @Test
    void rejectsNonPositiveMaxNorm() {
        assertThrows(JTuneException.class, () -> GradientClipping.clipByGlobalNorm(List.of(param("a", 1)), 0));
    }
}
