package org.jtune.infer;

import java.util.Arrays;
import java.util.Set;
import java.util.function.Consumer;
import org.jtune.tokenizer.StreamDecoder;
import org.jtune.tokenizer.Tokenizer;

/**
 * The generation loop: prefill the prompt in one pass, then sample and feed one token at a time,
 * streaming text as soon as it is valid UTF-8, until an end-of-sequence id, a stop string, the token
 * budget or the end of the context. The model work per step allocates nothing; text streaming does
 * (strings for the callback).
 */
public final class Generator {
    private final Session session;
    private final Tokenizer tokenizer;     // null: token ids only, no text
    private final Set<Integer> eosIds;

    public Generator(Session session, Tokenizer tokenizer, Set<Integer> eosIds) {
        this.session = session;
        this.tokenizer = tokenizer;
        this.eosIds = Set.copyOf(eosIds);
    }

    /**
     * Appends {@code prompt} to the session (which may already hold a conversation) and generates.
     * {@code onText} receives each new piece of text (may be null).
     */
    public GenerationResult generate(int[] prompt, SamplingParams params, Consumer<String> onText) {
        long t0 = System.nanoTime();
        if (prompt.length > 0) {
            session.feed(prompt);
        } else if (session.length() == 0) {
            throw new org.jtune.JTuneException("nothing to generate from: the prompt is empty and the session holds no tokens");
        }
        long t1 = System.nanoTime();
        Sampler sampler = new Sampler(params, session.model().info().vocabSize());
        StreamDecoder decoder = tokenizer == null ? null : tokenizer.newStreamDecoder(true);
        StopStringMatcher stops = new StopStringMatcher(params.stopStrings());
        StringBuilder text = new StringBuilder();
        int[] out = new int[params.maxNewTokens()];
        int n = 0;
        GenerationResult.FinishReason reason = GenerationResult.FinishReason.MAX_TOKENS;
        while (n < params.maxNewTokens()) {
            int next = sampler.sample(session.logits(), session.historyBuffer(), session.length());
            if (!params.ignoreEos() && eosIds.contains(next)) {
                reason = GenerationResult.FinishReason.EOS;
                break;
            }
            out[n++] = next;
            if (decoder != null) {
                String piece = stops.push(decoder.next(next));
                emit(piece, text, onText);
                if (stops.stopped()) {
                    reason = GenerationResult.FinishReason.STOP_STRING;
                    break;
                }
            }
            if (n == params.maxNewTokens()) {
                break;
            }
            if (session.remaining() == 0) {
                reason = GenerationResult.FinishReason.CONTEXT_FULL;
                break;
            }
            session.feed(next);
        }
        if (decoder != null && reason != GenerationResult.FinishReason.STOP_STRING) {
            emit(stops.push(decoder.flush()), text, onText);
            emit(stops.flush(), text, onText);
        }
        long t2 = System.nanoTime();
        return new GenerationResult(text.toString(), Arrays.copyOf(out, n), prompt.length, reason, t1 - t0, t2 - t1);
    }

    private static void emit(String piece, StringBuilder text, Consumer<String> onText) {
        if (!piece.isEmpty()) {
            text.append(piece);
            if (onText != null) {
                onText.accept(piece);
            }
        }
    }
}
