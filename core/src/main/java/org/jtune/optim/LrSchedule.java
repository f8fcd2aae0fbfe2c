package org.jtune.optim;

import java.util.Locale;
import org.jtune.JTuneException;

/**
 * Learning-rate schedules with Hugging Face's values: linear warmup over {@code warmupSteps}, then
 * constant, linear decay to 0 ({@code get_linear_schedule_with_warmup}) or half-cosine decay to
 * {@code minLrRatio · lr} ({@code get_cosine_schedule_with_warmup}, with the {@code min_lr_rate} of
 * {@code get_cosine_with_min_lr_schedule_with_warmup}). HF wraps these in a {@code LambdaLR} that the
 * Trainer steps after each optimizer step, so the k-th optimizer step (k from 0) uses
 * {@code lr · lambda(k)}; in particular the first step of a warmup uses lr 0. {@link #lr(long)}
 * takes that same 0-based k. {@code minLrRatio} applies to the cosine schedule only.
 */
public final class LrSchedule {
    public enum Kind {
        CONSTANT, LINEAR, COSINE;

        /** "constant", "linear" or "cosine", case-insensitive. */
        public static Kind parse(String s) {
            try {
                return valueOf(s.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new JTuneException("unknown learning-rate schedule '" + s + "'; use constant, linear or cosine");
            }
        }
    }

    private final Kind kind;
    private final double baseLr;
    private final long warmupSteps;
    private final long totalSteps;
    private final double minLrRatio;

    public LrSchedule(Kind kind, double baseLr, long warmupSteps, long totalSteps, double minLrRatio) {
        if (!(baseLr >= 0) || Double.isInfinite(baseLr)) {
            throw new JTuneException("learning rate must be finite and >= 0, got " + baseLr);
        }
        if (warmupSteps < 0) {
            throw new JTuneException("warmup steps must be >= 0, got " + warmupSteps);
        }
        if (kind != Kind.CONSTANT && totalSteps < 1) {
            throw new JTuneException("a " + kind.name().toLowerCase(Locale.ROOT)
                    + " schedule needs the total number of optimizer steps (>= 1), got " + totalSteps);
        }
        if (!(minLrRatio >= 0 && minLrRatio <= 1)) {
            throw new JTuneException("min lr ratio must lie in [0, 1], got " + minLrRatio);
        }
        this.kind = kind;
        this.baseLr = baseLr;
        this.warmupSteps = warmupSteps;
        this.totalSteps = totalSteps;
        this.minLrRatio = minLrRatio;
    }

    public static LrSchedule constant(double lr, long warmupSteps) {
        return new LrSchedule(Kind.CONSTANT, lr, warmupSteps, 0, 0);
    }

    public static LrSchedule linear(double lr, long warmupSteps, long totalSteps) {
        return new LrSchedule(Kind.LINEAR, lr, warmupSteps, totalSteps, 0);
    }

    public static LrSchedule cosine(double lr, long warmupSteps, long totalSteps, double minLrRatio) {
        return new LrSchedule(Kind.COSINE, lr, warmupSteps, totalSteps, minLrRatio);
    }

    public Kind kind() {
        return kind;
    }

    public double baseLr() {
        return baseLr;
    }

    public long warmupSteps() {
        return warmupSteps;
    }

    public long totalSteps() {
        return totalSteps;
    }

    public double minLrRatio() {
        return minLrRatio;
    }

    /** The learning rate of optimizer step {@code step} (0-based). */
    public double lr(long step) {
        return baseLr * multiplier(step);
    }

    /** HF's {@code lr_lambda(step)}, transcribed operation by operation. */
    public double multiplier(long step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        if (step < warmupSteps) {
            return (double) step / (double) Math.max(1, warmupSteps);
        }
        return switch (kind) {
            case CONSTANT -> 1.0;
            case LINEAR -> Math.max(0.0, (double) (totalSteps - step) / (double) Math.max(1, totalSteps - warmupSteps));
            case COSINE -> {
                double progress = (double) (step - warmupSteps) / (double) Math.max(1, totalSteps - warmupSteps);
                double factor = 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress));
                factor = factor * (1 - minLrRatio) + minLrRatio;
                yield Math.max(0, factor);
            }
        };
    }

    @Override
    public String toString() {
        return kind.name().toLowerCase(Locale.ROOT) + "(lr=" + baseLr + ", warmup=" + warmupSteps + ", total="
                + totalSteps + (kind == Kind.COSINE ? ", minLrRatio=" + minLrRatio : "") + ")";
    }
}
