package org.jtune.tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns generated token ids into text pieces as they arrive, for streaming to a terminal or an
 * SSE client. Decoding each id alone is wrong twice over: byte-fallback tokens (Llama's
 * {@code <0xE2><0x82><0xAC>}) and byte-level BPE pieces can split one character over several ids,
 * and SentencePiece decoders strip the leading space of the first token in a sequence. So, like
 * TGI's prefix-offset method and HF's TextStreamer, we decode a short window of ids that starts
 * before the new ones and emit only the suffix that is new, holding it back while it ends in an
 * incomplete character (U+FFFD). The pieces concatenate to {@code decode(allIds)}.
 */
public final class StreamDecoder {

    private static final char REPLACEMENT = '\uFFFD';

    private final Tokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private final List<Integer> ids = new ArrayList<>();
    private int prefixOffset;   // start of the window: ids already emitted, kept for context
    private int readOffset;     // ids before this have been emitted as text

    StreamDecoder(Tokenizer tokenizer, boolean skipSpecialTokens) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
    }

    /** Adds one id; returns the newly completed text ("" if nothing new yet). */
    public String next(int tokenId) {
        ids.add(tokenId);
        String prefix = tokenizer.decode(ids, prefixOffset, readOffset, skipSpecialTokens);
        String text = tokenizer.decode(ids, prefixOffset, ids.size(), skipSpecialTokens);
        // Like TGI we slice by length without checking that text starts with prefix: with the
        // HF decoders it always does, and insisting would stall the stream if one ever did not.
        if (text.length() > prefix.length() && text.charAt(text.length() - 1) != REPLACEMENT) {
            String piece = text.substring(prefix.length());
            prefixOffset = readOffset;
            readOffset = ids.size();
            trim();
            return piece;
        }
        return "";
    }

    /** Whatever is held back at the end of generation, even if it is an incomplete character. */
    public String flush() {
        String prefix = tokenizer.decode(ids, prefixOffset, readOffset, skipSpecialTokens);
        String text = tokenizer.decode(ids, prefixOffset, ids.size(), skipSpecialTokens);
        String rest = text.length() > prefix.length() ? text.substring(prefix.length()) : "";
        reset();
        return rest;
    }

    /** Forgets all ids, ready for a new sequence. */
    public void reset() {
        ids.clear();
        prefixOffset = 0;
        readOffset = 0;
    }

    /** Drops ids before the window so a long generation does not keep every id. */
    private void trim() {
        if (prefixOffset > 64) {
            ids.subList(0, prefixOffset).clear();
            readOffset -= prefixOffset;
            prefixOffset = 0;
        }
    }
}
