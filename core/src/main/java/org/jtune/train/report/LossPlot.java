package org.jtune.train.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;
import org.jtune.JTuneException;

/**
 * Draws the loss curve of a run as a PNG, with nothing but the JDK (Java2D in headless mode):
 * the per-step train loss (thin), its exponential moving average once there are enough steps to
 * need smoothing (bold), and validation loss as connected dots; axes with "nice" tick labels, a
 * grid, a legend and a title. Non-finite losses leave a gap instead of wrecking the scale.
 */
public final class LossPlot {
    static {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
    }

    private static final Color TRAIN_RAW = new Color(31, 119, 180, 110);
    private static final Color TRAIN_SMOOTH = new Color(31, 119, 180);
    private static final Color VAL = new Color(255, 127, 14);
    private static final Color GRID = new Color(225, 225, 225);
    private static final Color AXIS = new Color(60, 60, 60);
    /** EMA smoothing only pays off on longer, noisier curves. */
    private static final int SMOOTH_MIN_POINTS = 20;

    private LossPlot() {
    }

    /** Plots the train loss of every entry and the validation loss where present. */
    public static void write(Path png, List<Metrics.Entry> entries, String title, int width, int height) {
        int nVal = 0;
        for (Metrics.Entry e : entries) {
            if (e.valLoss() != null) {
                nVal++;
            }
        }
        double[] tx = new double[entries.size()], ty = new double[entries.size()];
        double[] vx = new double[nVal], vy = new double[nVal];
        int j = 0;
        for (int i = 0; i < entries.size(); i++) {
            Metrics.Entry e = entries.get(i);
            tx[i] = e.step();
            ty[i] = e.loss();
            if (e.valLoss() != null) {
                vx[j] = e.step();
                vy[j++] = e.valLoss();
            }
        }
        write(png, render(title, tx, ty, vx, vy, width, height));
    }

    /** Writes an image as PNG atomically (temp file, then rename). */
    public static void write(Path png, BufferedImage image) {
        try {
            Path parent = png.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
            if (!ImageIO.write(image, "png", tmp.toFile())) {
                throw new JTuneException("this JDK has no PNG writer; cannot write " + png);
            }
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new JTuneException("cannot write loss plot " + png + ": " + e.getMessage(), e);
        }
    }

    /** Renders train loss (x = step) and validation loss points into a width × height RGB image. */
    public static BufferedImage render(String title, double[] trainSteps, double[] trainLoss, double[] valSteps,
            double[] valLoss, int width, int height) {
        if (width < 200 || height < 150) {
            throw new JTuneException("loss plot must be at least 200x150 pixels, got " + width + "x" + height);
        }
        if (trainSteps.length != trainLoss.length || valSteps.length != valLoss.length) {
            throw new IllegalArgumentException("x and y arrays differ in length");
        }
        double[] smooth = trainLoss.length >= SMOOTH_MIN_POINTS ? ema(trainLoss, 0.9) : null;

        double xMin = Double.POSITIVE_INFINITY, xMax = Double.NEGATIVE_INFINITY;
        double yMin = Double.POSITIVE_INFINITY, yMax = Double.NEGATIVE_INFINITY;
        for (double[][] s : new double[][][] {{trainSteps, trainLoss}, {valSteps, valLoss}}) {
            for (int i = 0; i < s[0].length; i++) {
                if (Double.isFinite(s[0][i]) && Double.isFinite(s[1][i])) {
                    xMin = Math.min(xMin, s[0][i]);
                    xMax = Math.max(xMax, s[0][i]);
                    yMin = Math.min(yMin, s[1][i]);
                    yMax = Math.max(yMax, s[1][i]);
                }
            }
        }
        if (xMin > xMax) { // nothing finite to draw
            xMin = 0;
            xMax = 1;
            yMin = 0;
            yMax = 1;
        }
        if (xMax == xMin) {
            xMin -= 1;
            xMax += 1;
        }
        if (yMax == yMin) {
            double pad = Math.max(Math.abs(yMin) * 0.1, 1e-3);
            yMin -= pad;
            yMax += pad;
        }
        double yPad = (yMax - yMin) * 0.05;
        Ticks xt = Ticks.of(xMin, xMax, Math.max(3, width / 110));
        Ticks yt = Ticks.of(yMin - yPad, yMax + yPad, Math.max(3, height / 70));

        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);

            Font tickFont = new Font(Font.SANS_SERIF, Font.PLAIN, 12);
            Font labelFont = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
            Font titleFont = new Font(Font.SANS_SERIF, Font.BOLD, 15);
            g.setFont(tickFont);
            FontMetrics fm = g.getFontMetrics();
            int yLabelWidth = 0;
            for (double v : yt.values()) {
                yLabelWidth = Math.max(yLabelWidth, fm.stringWidth(yt.format(v)));
            }
            int left = 30 + yLabelWidth + 8, right = width - 20, top = 42, bottom = height - 48;
            Frame f = new Frame(left, right, top, bottom, xt.lo, xt.hi, yt.lo, yt.hi);

            // grid and tick labels
            for (double v : xt.values()) {
                int px = (int) Math.round(f.x(v));
                g.setColor(GRID);
                g.drawLine(px, top, px, bottom);
                g.setColor(AXIS);
                g.drawLine(px, bottom, px, bottom + 4);
                String s = xt.format(v);
                g.drawString(s, px - fm.stringWidth(s) / 2, bottom + 6 + fm.getAscent());
            }
            for (double v : yt.values()) {
                int py = (int) Math.round(f.y(v));
                g.setColor(GRID);
                g.drawLine(left, py, right, py);
                g.setColor(AXIS);
                g.drawLine(left - 4, py, left, py);
                String s = yt.format(v);
                g.drawString(s, left - 8 - fm.stringWidth(s), py + fm.getAscent() / 2 - 1);
            }
            g.setColor(AXIS);
            g.drawRect(left, top, right - left, bottom - top);

            // axis labels and title
            g.setFont(labelFont);
            FontMetrics lm = g.getFontMetrics();
            g.drawString("step", (left + right) / 2 - lm.stringWidth("step") / 2, height - 10);
            Graphics2D rot = (Graphics2D) g.create();
            rot.rotate(-Math.PI / 2);
            rot.drawString("loss", -((top + bottom) / 2 + lm.stringWidth("loss") / 2), 16);
            rot.dispose();
            g.setFont(titleFont);
            FontMetrics tm = g.getFontMetrics();
            String t = title == null ? "" : title;
            g.drawString(t, (left + right) / 2 - tm.stringWidth(t) / 2, 26);

            // data, clipped to the frame
            Graphics2D d = (Graphics2D) g.create();
            d.clipRect(left + 1, top + 1, right - left - 1, bottom - top - 1);
            d.setColor(smooth == null ? TRAIN_SMOOTH : TRAIN_RAW);
            d.setStroke(new BasicStroke(smooth == null ? 2f : 1.2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
            d.draw(polyline(f, trainSteps, trainLoss));
            if (smooth != null) {
                d.setColor(TRAIN_SMOOTH);
                d.setStroke(new BasicStroke(2.2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
                d.draw(polyline(f, trainSteps, smooth));
            }
            d.setColor(VAL);
            d.setStroke(new BasicStroke(1.8f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND, 10f,
                    new float[] {6f, 4f}, 0f));
            d.draw(polyline(f, valSteps, valLoss));
            for (int i = 0; i < valSteps.length; i++) {
                if (Double.isFinite(valSteps[i]) && Double.isFinite(valLoss[i])) {
                    d.fill(new Ellipse2D.Double(f.x(valSteps[i]) - 4, f.y(valLoss[i]) - 4, 8, 8));
                }
            }
            d.dispose();

            // legend, top right inside the frame
            g.setFont(tickFont);
            List<Object[]> items = new java.util.ArrayList<>();
            if (trainLoss.length > 0) {
                items.add(new Object[] {smooth == null ? "train loss" : "train loss (per step)",
                        smooth == null ? TRAIN_SMOOTH : TRAIN_RAW, Boolean.FALSE});
            }
            if (smooth != null) {
                items.add(new Object[] {"train loss (EMA 0.9)", TRAIN_SMOOTH, Boolean.FALSE});
            }
            if (valLoss.length > 0) {
                items.add(new Object[] {"validation loss", VAL, Boolean.TRUE});
            }
            if (!items.isEmpty()) {
                int lw = 0;
                for (Object[] it : items) {
                    lw = Math.max(lw, fm.stringWidth((String) it[0]));
                }
                int rowH = fm.getHeight() + 4, boxW = lw + 46, boxH = items.size() * rowH + 10;
                int bx = right - boxW - 10, by = top + 10;
                g.setColor(new Color(255, 255, 255, 230));
                g.fillRect(bx, by, boxW, boxH);
                g.setColor(new Color(180, 180, 180));
                g.drawRect(bx, by, boxW, boxH);
                for (int i = 0; i < items.size(); i++) {
                    Object[] it = items.get(i);
                    int cy = by + 5 + i * rowH + rowH / 2;
                    g.setColor((Color) it[1]);
                    g.setStroke(new BasicStroke(2.2f));
                    g.drawLine(bx + 8, cy, bx + 32, cy);
                    if ((Boolean) it[2]) {
                        g.fill(new Ellipse2D.Double(bx + 20 - 4, cy - 4, 8, 8));
                    }
                    g.setColor(AXIS);
                    g.drawString((String) it[0], bx + 38, cy + fm.getAscent() / 2 - 1);
                }
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    /** A polyline through the finite points; a non-finite point breaks the line. */
    private static Path2D polyline(Frame f, double[] xs, double[] ys) {
        Path2D.Double p = new Path2D.Double();
        boolean pen = false;
        for (int i = 0; i < xs.length; i++) {
            if (!Double.isFinite(xs[i]) || !Double.isFinite(ys[i])) {
                pen = false;
                continue;
            }
            if (pen) {
                p.lineTo(f.x(xs[i]), f.y(ys[i]));
            } else {
                p.moveTo(f.x(xs[i]), f.y(ys[i]));
                pen = true;
            }
        }
        return p;
    }

    /** Bias-corrected exponential moving average (as TensorBoard's smoothing), skipping non-finite values. */
    static double[] ema(double[] ys, double beta) {
        double[] out = new double[ys.length];
        double acc = 0, weight = 0;
        for (int i = 0; i < ys.length; i++) {
            if (!Double.isFinite(ys[i])) {
                out[i] = Double.NaN;
                continue;
            }
            acc = beta * acc + (1 - beta) * ys[i];
            weight = beta * weight + (1 - beta);
            out[i] = acc / weight;
        }
        return out;
    }

    /** Data-to-pixel mapping of the plot frame. */
    private record Frame(int left, int right, int top, int bottom, double x0, double x1, double y0, double y1) {
        double x(double v) {
            return left + (v - x0) / (x1 - x0) * (right - left);
        }

        double y(double v) {
            return bottom - (v - y0) / (y1 - y0) * (bottom - top);
        }
    }

    /** Round tick positions (1, 2, 5 × 10^k spacing) covering [lo, hi]. */
    record Ticks(double lo, double hi, double spacing) {
        static Ticks of(double min, double max, int maxTicks) {
            double spacing = nice((max - min) / Math.max(1, maxTicks - 1));
            return new Ticks(Math.floor(min / spacing) * spacing, Math.ceil(max / spacing) * spacing, spacing);
        }

        private static double nice(double x) {
            double exp = Math.floor(Math.log10(x));
            double f = x / Math.pow(10, exp);
            double n = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
            return n * Math.pow(10, exp);
        }

        double[] values() {
            int n = (int) Math.round((hi - lo) / spacing) + 1;
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = lo + i * spacing;
            }
            return v;
        }

        String format(double v) {
            int decimals = (int) Math.max(0, -Math.floor(Math.log10(spacing) + 1e-9));
            if (Math.abs(v) < spacing * 1e-6) {
                v = 0; // no "-0.00"
            }
            return String.format(Locale.ROOT, "%." + decimals + "f", v);
        }
    }
}
