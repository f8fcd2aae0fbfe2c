package org.jtune.train.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;
import org.jtune.JTuneException;
import org.jtune.tokenizer.Tokenizer;

/**
 * Cuts examples into batches, epoch after epoch, in an order that is a pure function of
 * (seed, epoch): the examples of epoch e are visited in a Fisher–Yates permutation drawn from a
 * {@link SplittableRandom} seeded with {@code mix64(seed, e)}. So the sequence of batches is
 * reproducible, and a run resumed with {@link #seek(int, int)} at the (epoch, position) stored in its
 * checkpoint continues with exactly the batches an uninterrupted run would have seen.
 *
 * <p>Two modes. {@link Mode#PAD}: each row is one example, right-padded to the longest in the batch
 * with {@code padId} (labels IGNORE on padding; the last batch of an epoch may have fewer rows).
 * {@link Mode#PACK}: the epoch's examples are concatenated in order and cut into rows of exactly
 * {@code maxLength} tokens, labels kept, so a row may hold the end of one example and the start of
 * the next. As in HF's simple packing ({@code group_texts}, TRL's {@code packing=True} without
 * position-id resets) attention is NOT reset at example boundaries: later examples in a row can
 * attend to earlier ones. Each example starts with BOS whose label is IGNORE (unless trained on the
 * prompt too), so no loss is put on predicting across a boundary. The tokens left over after the last full row of an epoch
 * ({@code total % maxLength}) are dropped for that epoch, as group_texts does; since every epoch has
 * its own order, a different tail is dropped each time.
 */
public final class Batcher implements Iterator<Batch> {
    public enum Mode { PAD, PACK }

    /**
     * @param maxLength packed row length (PACK); ignored by PAD, whose rows are as long as the
     *                  longest example of the batch (Tokenization already cut them to maxLength)
     * @param padId     id written on padding (tokenizer pad, else EOS); never seen by the loss
     * @param shuffle   false visits examples in their given order every epoch
     * @param epochs    how many epochs {@link #hasNext()} runs for
     */
    public record Config(Mode mode, int batchSize, int maxLength, int padId, long seed, boolean shuffle, int epochs) {
        public Config {
            if (batchSize < 1) {
                throw new JTuneException("batch size is " + batchSize + "; it must be at least 1");
            }
            if (mode == Mode.PACK && maxLength < 2) {
                throw new JTuneException("packed row length (maxLength) is " + maxLength + "; it must be at least 2");
            }
            if (epochs < 1) {
                throw new JTuneException("epochs is " + epochs + "; it must be at least 1");
            }
        }
    }

    private final List<Example> examples;
    private final Config config;
    private final long totalTokens;
    private final int batchesPerEpoch;

    private int epoch;
    private int position;
    private int cachedEpoch = -1;
    private int[] order;       // (examples) this epoch's permutation
    private long[] offsets;    // (examples + 1) PACK: start of each ordered example in the stream

    public Batcher(List<Example> examples, Config config) {
        if (examples.isEmpty()) {
            throw new JTuneException("no training examples to batch; is the data file empty or everything skipped?");
        }
        this.examples = List.copyOf(examples);
        this.config = config;
        long total = 0;
        for (Example e : this.examples) {
            total += e.length();
        }
        this.totalTokens = total;
        if (config.mode() == Mode.PACK) {
            long rows = total / config.maxLength();
            if (rows == 0) {
                throw new JTuneException("the data has " + total + " tokens, fewer than one packed row of "
                        + config.maxLength() + "; lower maxLength or use padding instead of packing");
            }
            this.batchesPerEpoch = Math.toIntExact((rows + config.batchSize() - 1) / config.batchSize());
        } else {
            this.batchesPerEpoch = (this.examples.size() + config.batchSize() - 1) / config.batchSize();
        }
    }

    /**
     * The id to pad with: the model's pad_token (special_tokens_map.json over tokenizer_config.json,
     * as transformers reads them) when it is in the vocabulary, else EOS, else 0. Which one hardly
     * matters, since padding is masked from attention and loss, but matching HF keeps dumps
     * comparable. The Tokenizer does not expose pad_token, hence the model directory.
     */
    public static int padIdFor(Tokenizer tokenizer, Path modelDir) {
        for (String name : new String[] {"special_tokens_map.json", "tokenizer_config.json"}) {
            Path f = modelDir.resolve(name);
            if (!Files.isRegularFile(f)) {
                continue;
            }
            JsonNode pad;
            try {
                pad = new ObjectMapper().readTree(f.toFile()).path("pad_token");
            } catch (IOException e) {
                throw new JTuneException(f + " is not valid JSON (" + e.getMessage() + ")", e);
            }
            String token = pad.isTextual() ? pad.asText() : pad.path("content").isTextual() ? pad.path("content").asText() : null;
            if (token != null && tokenizer.tokenId(token).isPresent()) {
                return tokenizer.tokenId(token).getAsInt();
            }
        }
        return tokenizer.eosTokenId().orElse(0);
    }

    public Config config() {
        return config;
    }

    public int batchesPerEpoch() {
        return batchesPerEpoch;
    }

    /** Packed rows per epoch (PACK), or examples (PAD). */
    public long rowsPerEpoch() {
        return config.mode() == Mode.PACK ? totalTokens / config.maxLength() : examples.size();
    }

    public long totalTokens() {
        return totalTokens;
    }

    /** The epoch of the next batch. */
    public int epoch() {
        return epoch;
    }

    /** The index within its epoch of the next batch; store it with {@link #epoch()} to resume. */
    public int position() {
        return position;
    }

    /** Continues from (epoch, position), e.g. as stored in a checkpoint. */
    public void seek(int epoch, int position) {
        if (epoch < 0 || position < 0 || position > batchesPerEpoch) {
            throw new JTuneException("cannot resume at epoch " + epoch + ", batch " + position + ": an epoch has "
                    + batchesPerEpoch + " batches; was the checkpoint made with other data or batch size?");
        }
        this.epoch = epoch;
        this.position = position;
        normalise();
    }

    @Override
    public boolean hasNext() {
        return epoch < config.epochs();
    }

    @Override
    public Batch next() {
        if (!hasNext()) {
            throw new NoSuchElementException("all " + config.epochs() + " epochs done");
        }
        ensureEpoch();
        Batch b = config.mode() == Mode.PACK ? packed() : padded();
        position++;
        normalise();
        return b;
    }

    private void normalise() {
        if (position == batchesPerEpoch) {
            epoch++;
            position = 0;
        }
    }

    private void ensureEpoch() {
        if (cachedEpoch == epoch) {
            return;
        }
        order = config.shuffle() ? permutation(examples.size(), config.seed(), epoch) : identity(examples.size());
        if (config.mode() == Mode.PACK) {
            offsets = new long[order.length + 1];
            for (int i = 0; i < order.length; i++) {
                offsets[i + 1] = offsets[i] + examples.get(order[i]).length();
            }
        }
        cachedEpoch = epoch;
    }

    private Batch padded() {
        int from = position * config.batchSize();
        int rows = Math.min(config.batchSize(), order.length - from);
        int cols = 0;
        for (int r = 0; r < rows; r++) {
            cols = Math.max(cols, examples.get(order[from + r]).length());
        }
        int[] ids = new int[rows * cols];
        int[] labels = new int[rows * cols];
        int[] lengths = new int[rows];
        Arrays.fill(ids, config.padId());
        Arrays.fill(labels, Example.IGNORE);
        for (int r = 0; r < rows; r++) {
            Example e = examples.get(order[from + r]);
            System.arraycopy(e.inputIds(), 0, ids, r * cols, e.length());
            System.arraycopy(e.labels(), 0, labels, r * cols, e.length());
            lengths[r] = e.length();
        }
        return new Batch(epoch, position, rows, cols, ids, labels, lengths);
    }

    private Batch packed() {
        int len = config.maxLength();
        long totalRows = totalTokens / len;
        long firstRow = (long) position * config.batchSize();
        int rows = (int) Math.min(config.batchSize(), totalRows - firstRow);
        int[] ids = new int[rows * len];
        int[] labels = new int[rows * len];
        int[] lengths = new int[rows];
        Arrays.fill(lengths, len);
        long start = firstRow * len;
        // The ordered example holding stream position `start`.
        int k = Arrays.binarySearch(offsets, start);
        k = k >= 0 ? k : -k - 2;
        long pos = start;
        int filled = 0;
        while (filled < ids.length) {
            Example e = examples.get(order[k]);
            int skip = (int) (pos - offsets[k]);
            int n = Math.min(e.length() - skip, ids.length - filled);
            System.arraycopy(e.inputIds(), skip, ids, filled, n);
            System.arraycopy(e.labels(), skip, labels, filled, n);
            filled += n;
            pos += n;
            k++;
        }
        return new Batch(epoch, position, rows, len, ids, labels, lengths);
    }

    /** Fisher–Yates from the last index down, with SplittableRandom(mix64(seed, stream)); stream = epoch. */
    static int[] permutation(int n, long seed, long stream) {
        int[] p = identity(n);
        SplittableRandom rnd = new SplittableRandom(mix64(seed, stream));
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** Stafford's mix13 over seed and stream, so nearby (seed, stream) pairs give unrelated streams. */
    static long mix64(long seed, long stream) {
        long z = seed * 0x9E3779B97F4A7C15L + stream * 0xD1B54A32D192ED03L + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static int[] identity(int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        return p;
    }
}
