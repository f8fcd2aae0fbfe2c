package org.jtune.train.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LossPlotTest {
    static List<Metrics.Entry> noisyRun(int steps) {
        Random r = new Random(1);
        List<Metrics.Entry> out = new ArrayList<>();
        for (int s = 1; s <= steps; s++) {
            double loss = 1.2 + 3.2 * Math.exp(-s / 60.0) + 0.15 * r.nextGaussian();
            Metrics.Entry e = new Metrics.Entry(s, s / 100.0, loss, 1e-4, 1, 900, null, s);
            out.add(s % 50 == 0 ? e.withValLoss(1.35 + 3.0 * Math.exp(-s / 60.0)) : e);
        }
        return out;
    }

    @Test
    void writesPngOfRequestedSizeWithContent(@TempDir Path dir) throws Exception {
        Path png = dir.resolve("plots/loss.png");
        LossPlot.write(png, noisyRun(300), "tiny-llama LoRA", 800, 500);
        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img, "not a readable image");
        assertEquals(800, img.getWidth());
        assertEquals(500, img.getHeight());
        Set<Integer> colours = new HashSet<>();
        for (int y = 0; y < img.getHeight(); y += 3) {
            for (int x = 0; x < img.getWidth(); x += 3) {
                colours.add(img.getRGB(x, y));
            }
        }
        assertTrue(colours.size() > 10, "image is nearly uniform: " + colours.size() + " colours");
        // kept beside the build output for a human look
        Path keep = Path.of("target", "test-plots");
        Files.createDirectories(keep);
        Files.copy(png, keep.resolve("loss.png"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    @Test
    void survivesDegenerateInput(@TempDir Path dir) throws Exception {
        Path png = dir.resolve("empty.png");
        LossPlot.write(png, List.of(), "no steps yet", 400, 300);
        assertEquals(400, ImageIO.read(png.toFile()).getWidth());
        Path one = dir.resolve("one.png");
        LossPlot.write(one, List.of(new Metrics.Entry(1, 0, 2.0, 1e-4, 1, 1, null, 1),
                new Metrics.Entry(2, 0, Double.NaN, 1e-4, 1, 1, null, 1)), "one step", 400, 300);
        assertEquals(300, ImageIO.read(one.toFile()).getHeight());
        Path few = Path.of("target", "test-plots", "few.png");
        LossPlot.write(few, noisyRun(12), "12 steps", 640, 400);
    }

    @Test
    void ticksAreRoundNumbersCoveringTheRange() {
        LossPlot.Ticks t = LossPlot.Ticks.of(1.13, 4.71, 6);
        assertEquals(1.0, t.lo(), 1e-12);
        assertEquals(5.0, t.hi(), 1e-12);
        assertEquals(1.0, t.spacing(), 1e-12);
        assertEquals("3", t.format(3.0));
        assertEquals(0.5, LossPlot.Ticks.of(0, 1, 5).spacing(), 1e-12); // 0.25 rounds up to 0.5
        assertEquals("0.5", LossPlot.Ticks.of(0, 1, 5).format(0.5));
        assertEquals("0.02", LossPlot.Ticks.of(0, 0.1, 6).format(0.02));
    }
}
