package org.jtune.train.data;

import java.util.List;
import java.util.Locale;

/**
 * What the data pipeline did, for the CLI to print before training starts: how many records were
 * read and skipped (with the first reasons), how many examples and tokens came out, how many were
 * cut to maxLength or dropped for having no loss token left, and how much of the data carries loss.
 */
public record DatasetSummary(int recordsRead, int skipped, List<String> skippedMessages, int examples,
                             long tokens, long lossTokens, int truncated, int droppedNoLoss,
                             int boundaryAdjusted) {
    public DatasetSummary {
        skippedMessages = List.copyOf(skippedMessages);
    }

    public static DatasetSummary of(DatasetReader.Result read, Tokenization.Result tokenized) {
        return new DatasetSummary(read.records().size(), read.skipped(), read.skippedMessages(),
                tokenized.examples().size(), tokenized.tokens(), tokenized.lossTokens(), tokenized.truncated(),
                tokenized.droppedNoLoss(), tokenized.boundaryAdjusted());
    }

    /** Fraction of tokens whose label is not IGNORE (1.0 for plain text, less for instructions). */
    public double lossFraction() {
        return tokens == 0 ? 0 : (double) lossTokens / tokens;
    }

    /** A few lines for the terminal. */
    public String format() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "records: %d read, %d skipped as malformed%n", recordsRead, skipped));
        for (String m : skippedMessages) {
            sb.append("  skipped ").append(m).append(System.lineSeparator());
        }
        if (skipped > skippedMessages.size()) {
            sb.append("  ... and ").append(skipped - skippedMessages.size()).append(" more").append(System.lineSeparator());
        }
        sb.append(String.format(Locale.ROOT, "examples: %d (%d truncated to maxLength, %d dropped with no response"
                + " token left)%n", examples, truncated, droppedNoLoss));
        sb.append(String.format(Locale.ROOT, "tokens: %d, %d with loss (%.1f%%), mean %.1f per example%n",
                tokens, lossTokens, 100 * lossFraction(), examples == 0 ? 0.0 : (double) tokens / examples));
        if (boundaryAdjusted > 0) {
            sb.append("prompt/response boundaries inside a token: ").append(boundaryAdjusted)
                    .append(" (the straddling token was given to the later segment)").append(System.lineSeparator());
        }
        return sb.toString();
    }
}
