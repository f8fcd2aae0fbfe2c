package org.jtune.train.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.tokenizer.Tokenizer;

/**
 * Tokenizes rendered records into {@link Example}s with the loss mask. The rendered text is encoded
 * once as a whole, because SentencePiece-style tokenizers do not concatenate: "Eat" alone is
 * "▁Eat" but after "\n" it is "E" "at", so pieces encoded separately would not be the tokens the
 * model sees at inference. Each segment boundary is found by encoding the text up to it and
 * checking that those ids are a prefix of the whole; where a token straddles a boundary (no known
 * template does this) the common prefix is used, so the straddling token goes to the later segment,
 * and the event is counted.
 *
 * <p>Then: BOS is put first when the tokenizer adds one and the text did not already produce it (a
 * template with {@code {{ bos_token }}}); every response segment ends with EOS: if its ids already
 * contain the EOS id (the TinyLlama/Zephyr template writes {@code </s>} itself) the label mask
 * ends at the last one and what the template writes after it ("\n") is prompt, otherwise the EOS id
 * is inserted. Prompt tokens after the last response carry no loss and are dropped, so every
 * example ends in EOS. Examples longer than {@code maxLength} are cut, keeping the start; an example
 * left with no loss token (its prompt alone fills maxLength) is dropped. Both are counted.
 */
public final class Tokenization {
    private final Tokenizer tokenizer;
    private final PromptFormat format;
    private final int maxLength;
    private final boolean trainOnPrompt;
    private final int bos; // -1: the tokenizer adds none
    private final int eos;

    /** The examples and what happened on the way; examples keep the order of the records. */
    public record Result(List<Example> examples, long tokens, long lossTokens, int truncated,
                         int droppedNoLoss, int boundaryAdjusted) {
        public Result {
            examples = List.copyOf(examples);
        }
    }

    public Tokenization(Tokenizer tokenizer, PromptFormat format, int maxLength, boolean trainOnPrompt) {
        if (maxLength < 2) {
            throw new JTuneException("maxLength is " + maxLength + "; it must be at least 2 tokens");
        }
        this.tokenizer = tokenizer;
        this.format = format;
        this.maxLength = maxLength;
        this.trainOnPrompt = trainOnPrompt;
        this.eos = tokenizer.eosTokenId().orElseThrow(() -> new JTuneException(
                "the tokenizer has no EOS token, so a response cannot be ended; set eos_token in tokenizer_config.json"));
        int[] probe = tokenizer.encode("a", true);
        int b = tokenizer.bosTokenId().orElse(-1);
        this.bos = b >= 0 && probe.length > 0 && probe[0] == b ? b : -1;
    }

    public Result tokenizeAll(List<TrainingRecord> records) {
        return tokenizeAll(records, null);
    }

    /** origins (parallel to records, may be null) name a record in error messages. */
    public Result tokenizeAll(List<TrainingRecord> records, List<String> origins) {
        List<Example> out = new ArrayList<>(records.size());
        long tokens = 0;
        long loss = 0;
        int truncated = 0;
        int dropped = 0;
        int[] adjusted = new int[1];
        for (int i = 0; i < records.size(); i++) {
            Example full;
            try {
                full = encode(format.render(records.get(i)), adjusted);
            } catch (JTuneException e) {
                String where = origins != null ? origins.get(i) : "record " + i;
                throw new JTuneException(where + ": " + e.getMessage(), e);
            }
            Example ex = full;
            if (full.length() > maxLength) {
                ex = new Example(Arrays.copyOf(full.inputIds(), maxLength), Arrays.copyOf(full.labels(), maxLength));
                truncated++;
            }
            int l = ex.lossTokens();
            if (l == 0) {
                dropped++;
                continue;
            }
            out.add(ex);
            tokens += ex.length();
            loss += l;
        }
        return new Result(out, tokens, loss, truncated, dropped, adjusted[0]);
    }

    /** One record, without truncation (may be longer than maxLength). */
    public Example tokenize(TrainingRecord record) {
        return encode(format.render(record), new int[1]);
    }

    private Example encode(PromptFormat.Rendered rendered, int[] adjusted) {
        List<PromptFormat.Segment> segs = rendered.segments();
        String text = rendered.text();
        int[] all = tokenizer.encode(text, false);
        // Token boundaries: bounds[k] is where segment k starts in `all`.
        int[] bounds = new int[segs.size() + 1];
        int chars = 0;
        for (int k = 0; k < segs.size(); k++) {
            bounds[k] = k == 0 ? 0 : prefixTokens(all, text.substring(0, chars), bounds[k - 1], adjusted);
            chars += segs.get(k).text().length();
        }
        bounds[segs.size()] = all.length;

        IntList ids = new IntList(all.length + 2);
        IntList labels = new IntList(all.length + 2);
        if (bos >= 0 && (all.length == 0 || all[0] != bos)) {
            ids.add(bos);
            labels.add(trainOnPrompt ? bos : Example.IGNORE);
        }
        int lastLoss = -1; // index in ids of the last response token
        for (int k = 0; k < segs.size(); k++) {
            int from = bounds[k];
            int to = bounds[k + 1];
            if (!segs.get(k).response()) {
                for (int t = from; t < to; t++) {
                    ids.add(all[t]);
                    labels.add(trainOnPrompt ? all[t] : Example.IGNORE);
                }
                continue;
            }
            int lastEos = -1;
            for (int t = from; t < to; t++) {
                if (all[t] == eos) {
                    lastEos = t;
                }
            }
            for (int t = from; t < to; t++) {
                boolean resp = lastEos < 0 || t <= lastEos;
                ids.add(all[t]);
                labels.add(resp || trainOnPrompt ? all[t] : Example.IGNORE);
                if (resp) {
                    lastLoss = ids.size() - 1;
                }
            }
            if (lastEos < 0) {
                // Inserted after the segment's tokens; anything the template wrote after it follows.
                ids.add(eos);
                labels.add(eos);
                lastLoss = ids.size() - 1;
            }
        }
        int keep = lastLoss + 1;
        return new Example(Arrays.copyOf(ids.a, keep), Arrays.copyOf(labels.a, keep));
    }

    /** How many tokens of `all` belong to `prefix`; at least `atLeast` so boundaries stay ordered. */
    private int prefixTokens(int[] all, String prefix, int atLeast, int[] adjusted) {
        int[] p = tokenizer.encode(prefix, false);
        int n = 0;
        int max = Math.min(p.length, all.length);
        while (n < max && p[n] == all[n]) {
            n++;
        }
        if (n != p.length) {
            adjusted[0]++;
        }
        return Math.max(n, atLeast);
    }

    private static final class IntList {
        int[] a;
        int n;

        IntList(int capacity) {
            a = new int[Math.max(4, capacity)];
        }

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, 2 * n);
            }
            a[n++] = v;
        }

        int size() {
            return n;
        }
    }
}
