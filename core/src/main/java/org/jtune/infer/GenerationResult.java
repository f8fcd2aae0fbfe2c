package org.jtune.infer;

/**
 * What a generation produced: the text (stop string removed), the chosen token ids, why it stopped,
 * and timings split into prefill and decode.
 */
public record GenerationResult(String text, int[] tokens, int promptTokens, FinishReason finishReason,
                               long prefillNanos, long decodeNanos) {
    public enum FinishReason {
        /** an end-of-sequence token was produced */
        EOS,
        /** a stop string appeared in the text */
        STOP_STRING,
        /** max new tokens reached */
        MAX_TOKENS,
        /** the session's context is full */
        CONTEXT_FULL
    }

    public double prefillTokensPerSecond() {
        return prefillNanos == 0 ? 0 : promptTokens * 1e9 / prefillNanos;
    }

    public double decodeTokensPerSecond() {
        return decodeNanos == 0 ? 0 : tokens.length * 1e9 / decodeNanos;
    }
}
