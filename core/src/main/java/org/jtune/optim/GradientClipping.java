package org.jtune.optim;

import java.util.List;
import org.jtune.JTuneException;

/**
 * Global-norm gradient clipping with the semantics of {@code torch.nn.utils.clip_grad_norm_}
 * (norm type 2): the L2 norm over all gradients together, and if it exceeds {@code maxNorm} every
 * gradient is scaled by {@code maxNorm / (norm + 1e-6)}. The norm is accumulated in double (PyTorch
 * takes per-tensor float32 norms, so the two may differ in the last float bits; the coefficient is
 * applied as a float, like PyTorch's float32 {@code clip_coef}). A non-finite norm leaves the
 * gradients untouched and is returned, so the caller can skip the step (PyTorch would scale by NaN).
 */
public final class GradientClipping {
    private GradientClipping() {
    }

    /** The L2 norm of all gradients concatenated, in double. */
    public static double globalNorm(List<Parameter> params) {
        double sum = 0;
        for (Parameter p : params) {
            float[] g = p.grad();
            double s = 0;
            for (float x : g) {
                s += (double) x * x;
            }
            sum += s;
        }
        return Math.sqrt(sum);
    }

    /**
     * Scales all gradients so their global norm is at most {@code maxNorm}; returns the norm
     * before clipping (what trainers log as grad_norm).
     */
    public static double clipByGlobalNorm(List<Parameter> params, double maxNorm) {
        if (!(maxNorm > 0) || Double.isInfinite(maxNorm)) {
            throw new JTuneException("max gradient norm must be a finite number > 0, got " + maxNorm
                    + "; to disable clipping, don't call clipByGlobalNorm");
        }
        double total = globalNorm(params);
        if (!Double.isFinite(total)) {
            return total;
        }
        double coef = maxNorm / (total + 1e-6);
        if (coef < 1.0) {
            float c = (float) coef;
            for (Parameter p : params) {
                float[] g = p.grad();
                for (int i = 0; i < g.length; i++) {
                    g[i] *= c;
                }
            }
        }
        return total;
    }
}
