package org.jtune.train.report;

import java.io.PrintStream;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * A one-line training progress display: step/total with a bar, loss, tokens/s and ETA. On a
 * terminal it rewrites its line in place with {@code \r} (padding over a longer previous line);
 * otherwise (a log file, CI) it prints a plain line every {@code every} steps and on the last one,
 * so logs stay readable. The ETA extrapolates the mean time per step since the first update, so
 * a resumed run's ETA reflects its own speed rather than counting time from before the resume.
 */
public final class ProgressBar {
    private static final int BAR_WIDTH = 20;

    private final long total;
    private final PrintStream out;
    private final boolean tty;
    private final int every;
    private final LongSupplier nanoClock;
    private long startNanos = -1;
    private long startStep;
    private int lastLength;
    private boolean open; // a \r line is on screen and needs a newline before other output

    /** Output to {@code System.err}; in-place updates when a console is attached, else a line every 10 steps. */
    public static ProgressBar create(long total) {
        return new ProgressBar(total, System.err, System.console() != null, 10, System::nanoTime);
    }

    public ProgressBar(long total, PrintStream out, boolean tty, int every, LongSupplier nanoClock) {
        if (total < 1 || every < 1) {
            throw new IllegalArgumentException("total and every must be >= 1, got " + total + ", " + every);
        }
        this.total = total;
        this.out = out;
        this.tty = tty;
        this.every = every;
        this.nanoClock = nanoClock;
    }

    /** Reports that optimizer step {@code step} (1-based, out of total) finished. */
    public synchronized void update(long step, double loss, double tokensPerS) {
        long now = nanoClock.getAsLong();
        if (startNanos < 0) {
            // the first report anchors the clock: count from the step before it
            startNanos = now;
            startStep = step;
        }
        String line = format(step, loss, tokensPerS, now);
        if (tty) {
            String padded = line.length() < lastLength ? line + " ".repeat(lastLength - line.length()) : line;
            out.print("\r" + padded);
            lastLength = line.length();
            open = true;
            if (step >= total) {
                finish();
            }
            out.flush();
        } else if (step % every == 0 || step >= total) {
            out.println(line);
            out.flush();
        }
    }

    /** Ends the in-place line so later output starts on a fresh line. */
    public synchronized void finish() {
        if (open) {
            out.println();
            out.flush();
            open = false;
            lastLength = 0;
        }
    }

    String format(long step, double loss, double tokensPerS, long now) {
        double frac = Math.min(1.0, Math.max(0.0, (double) step / total));
        int filled = (int) Math.round(frac * BAR_WIDTH);
        StringBuilder sb = new StringBuilder();
        sb.append("step ").append(step).append('/').append(total).append(" [")
                .append("#".repeat(filled)).append("-".repeat(BAR_WIDTH - filled)).append("] ")
                .append(String.format(Locale.ROOT, "%3d%%", Math.round(frac * 100)))
                .append(String.format(Locale.ROOT, " | loss %.4f", loss))
                .append(String.format(Locale.ROOT, " | %.0f tok/s", tokensPerS));
        long done = step - startStep;
        if (step >= total) {
            sb.append(" | done in ").append(duration((now - startNanos) / 1e9));
        } else if (done > 0) {
            double perStep = (now - startNanos) / 1e9 / done;
            sb.append(" | eta ").append(duration(perStep * (total - step)));
        } else {
            sb.append(" | eta ?");
        }
        return sb.toString();
    }

    /** 42s, 3m05s, 2h07m. */
    static String duration(double seconds) {
        long s = Math.round(seconds);
        if (s < 60) {
            return s + "s";
        }
        if (s < 3600) {
            return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
        }
        return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
    }
}
