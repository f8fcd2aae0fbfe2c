package org.jtune.train.report;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.jtune.JTuneException;

/**
 * The training log: one JSON object per line ({@code metrics.jsonl}), written and flushed as each
 * step finishes so a crash loses at most the line being written. Fields, in order: {@code step},
 * {@code epoch}, {@code loss}, {@code lr}, {@code grad_norm}, {@code tokens_per_s},
 * {@code val_loss} (only on steps that evaluated), {@code elapsed_s}. Non-finite numbers, which
 * JSON lacks, are written as the strings "NaN", "Infinity", "-Infinity".
 * <p>
 * On resume from a checkpoint at step k, {@link #resume} drops every line after step k (written
 * by the interrupted run past its last checkpoint) and a torn last line, so the finished log of a
 * resumed run has the same lines as an uninterrupted one.
 */
public final class Metrics implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** One logged step. {@code valLoss} is null when the step ran no validation. */
    public record Entry(long step, double epoch, double loss, double lr, double gradNorm, double tokensPerS,
            Double valLoss, double elapsedS) {
        public Entry withValLoss(double v) {
            return new Entry(step, epoch, loss, lr, gradNorm, tokensPerS, v, elapsedS);
        }
    }

    private final Path file;
    private final BufferedWriter out;

    private Metrics(Path file, boolean append) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            this.out = append
                    ? Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                            StandardOpenOption.APPEND, StandardOpenOption.WRITE)
                    : Files.newBufferedWriter(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new JTuneException("cannot open metrics file " + file + " for writing: " + e.getMessage(), e);
        }
    }

    /** Starts a new log, replacing any file already there. */
    public static Metrics create(Path file) {
        return new Metrics(file, false);
    }

    /** Reopens a log for a run resumed after optimizer step {@code lastStep}: later lines are dropped. */
    public static Metrics resume(Path file, long lastStep) {
        if (Files.exists(file)) {
            truncateAfter(file, lastStep);
        }
        return new Metrics(file, true);
    }

    public Path file() {
        return file;
    }

    /** Appends one line and flushes it to the file. */
    public synchronized void append(Entry e) {
        try {
            out.write(toJson(e));
            out.write('\n');
            out.flush();
        } catch (IOException ex) {
            throw new JTuneException("cannot write to metrics file " + file + ": " + ex.getMessage(), ex);
        }
    }

    @Override
    public synchronized void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Every entry of a log; a torn (unparseable) last line, as a crash leaves, is ignored. */
    public static List<Entry> read(Path file) {
        List<Entry> entries = new ArrayList<>();
        for (String line : lines(file)) {
            entries.add(parse(line));
        }
        return entries;
    }

    /** Rewrites the log (atomically) keeping only the lines with {@code step <= lastStep}. */
    public static void truncateAfter(Path file, long lastStep) {
        StringBuilder kept = new StringBuilder();
        for (String line : lines(file)) {
            if (parse(line).step() <= lastStep) {
                kept.append(line).append('\n');
            }
        }
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.writeString(tmp, kept, StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new JTuneException("cannot rewrite metrics file " + file + " for resume: " + e.getMessage(), e);
        }
    }

    /** Non-blank lines, without a torn last line; a bad line elsewhere is an error. */
    private static List<String> lines(Path file) {
        List<String> all;
        try {
            all = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new JTuneException("cannot read metrics file " + file + ": " + e.getMessage(), e);
        }
        List<String> good = new ArrayList<>();
        int last = all.size() - 1;
        while (last >= 0 && all.get(last).isBlank()) {
            last--;
        }
        for (int i = 0; i <= last; i++) {
            String line = all.get(i);
            if (line.isBlank()) {
                continue;
            }
            try {
                parse(line);
            } catch (JTuneException e) {
                if (i == last) {
                    break; // torn final write of a crashed run
                }
                throw new JTuneException("metrics file " + file + " line " + (i + 1) + " is not a metrics record: "
                        + e.getMessage() + "; fix or delete the line", e);
            }
            good.add(line);
        }
        return good;
    }

    static String toJson(Entry e) {
        ObjectNode o = JSON.createObjectNode();
        o.put("step", e.step());
        put(o, "epoch", e.epoch());
        put(o, "loss", e.loss());
        put(o, "lr", e.lr());
        put(o, "grad_norm", e.gradNorm());
        put(o, "tokens_per_s", e.tokensPerS());
        if (e.valLoss() != null) {
            put(o, "val_loss", e.valLoss());
        }
        put(o, "elapsed_s", e.elapsedS());
        try {
            return JSON.writeValueAsString(o);
        } catch (JsonProcessingException ex) {
            throw new IllegalStateException(ex);
        }
    }

    private static void put(ObjectNode o, String key, double v) {
        if (Double.isFinite(v)) {
            o.put(key, v);
        } else {
            o.put(key, Double.toString(v)); // "NaN", "Infinity", "-Infinity"
        }
    }

    static Entry parse(String line) {
        JsonNode o;
        try {
            o = JSON.readTree(line);
        } catch (JsonProcessingException e) {
            throw new JTuneException("invalid JSON: " + e.getOriginalMessage());
        }
        if (o == null || !o.isObject() || !o.path("step").canConvertToLong()) {
            throw new JTuneException("not a JSON object with an integer 'step': " + line);
        }
        JsonNode val = o.get("val_loss");
        return new Entry(o.get("step").asLong(), number(o, "epoch"), number(o, "loss"), number(o, "lr"),
                number(o, "grad_norm"), number(o, "tokens_per_s"),
                val == null || val.isNull() ? null : number(o, "val_loss"), number(o, "elapsed_s"));
    }

    private static double number(JsonNode o, String key) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) {
            return Double.NaN;
        }
        if (n.isNumber()) {
            return n.doubleValue();
        }
        try {
            return Double.parseDouble(n.asText());
        } catch (NumberFormatException e) {
            throw new JTuneException("field " + key + " is " + n + ", not a number");
        }
    }
}
