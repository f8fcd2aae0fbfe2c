package org.jtune.infer;

import org.jtune.JTuneException;

/**
 * The documented alternative to a context-overflow error: keep the newest prompt tokens so that the
 * prompt plus the requested new tokens fit, preserving a leading BOS token (models are trained to
 * see it first).
 */
public final class PromptTruncation {
    private PromptTruncation() {
    }

    /** Returns {@code prompt} unchanged if it fits, else its last tokens (with {@code bos} kept in front when it led). */
    public static int[] keepLast(int[] prompt, int context, int maxNewTokens, int bos) {
        int budget = context - maxNewTokens;
        if (budget < 1) {
            throw new JTuneException("--max-new-tokens " + maxNewTokens + " leaves no room for a prompt in a context of "
                    + context + " tokens; lower it or raise --max-context");
        }
        if (prompt.length <= budget) {
            return prompt;
        }
        boolean keepBos = bos >= 0 && prompt.length > 0 && prompt[0] == bos && budget > 1;
        int tail = keepBos ? budget - 1 : budget;
        int[] out = new int[budget];
        int o = 0;
        if (keepBos) {
            out[o++] = bos;
        }
        System.arraycopy(prompt, prompt.length - tail, out, o, tail);
        return out;
    }

    /** Fails with a clear message when the prompt plus new tokens exceed the context. */
    public static void requireFits(int[] prompt, int context, int maxNewTokens) {
        if (prompt.length + maxNewTokens > context) {
            throw new JTuneException("the prompt has " + prompt.length + " tokens; with --max-new-tokens " + maxNewTokens
                    + " it needs " + (prompt.length + maxNewTokens) + " but the context holds " + context
                    + ". Shorten the prompt, lower --max-new-tokens, raise --max-context, or pass --truncate"
                    + " to drop the oldest prompt tokens");
        }
    }
}
