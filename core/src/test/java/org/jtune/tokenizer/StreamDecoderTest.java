package org.jtune.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jtune.testutil.Shared;
import org.junit.jupiter.api.Test;

class StreamDecoderTest {

    private static final String MIXED = "Price: 5€ — naïve café 日本語 🦙🎉 done.\n  Indented  line";

    /** Feeds ids one at a time; checks every piece is whole UTF-8 and the whole equals decode. */
    private static List<String> streamAndCheck(Tokenizer tok, int[] ids, boolean skipSpecial) {
        StreamDecoder dec = tok.newStreamDecoder(skipSpecial);
        List<String> pieces = new ArrayList<>();
        for (int id : ids) {
            String piece = dec.next(id);
            assertWellFormed(piece);
            pieces.add(piece);
        }
        String rest = dec.flush();
        assertWellFormed(rest);
        pieces.add(rest);
        assertEquals(tok.decode(ids, skipSpecial), String.join("", pieces));
        return pieces;
    }

    private static void assertWellFormed(String piece) {
        assertFalse(piece.contains("\uFFFD"), "replacement char in piece: " + piece);
        try {
            StandardCharsets.UTF_8.newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(java.nio.CharBuffer.wrap(piece));   // fails on a lone surrogate
        } catch (CharacterCodingException e) {
            throw new AssertionError("piece is not valid UTF-8: " + piece, e);
        }
    }

    @Test
    void llamaByteFallbackCharactersArriveWhole() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            int[] ids = tok.encode(MIXED, true);
            // The emoji are not in Llama-2's vocabulary: they must be spelled with <0x..> tokens.
            assertTrue(tok.tokenId("<0xF0>").isPresent());
            assertTrue(Arrays.stream(ids).anyMatch(id -> id == tok.tokenId("<0xF0>").getAsInt()),
                    "expected byte-fallback tokens in " + Arrays.toString(ids));
            List<String> pieces = streamAndCheck(tok, ids, true);
            assertTrue(pieces.contains(""), "incomplete characters must be held back");
            assertTrue(pieces.stream().anyMatch(p -> p.contains("🦙")), "emoji arrives in one piece");
            streamAndCheck(tok, ids, false);
        }
    }

    @Test
    void sentencePieceLeadingSpacesSurviveStreaming() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            List<String> pieces = streamAndCheck(tok, tok.encode("Hello world and more", false), false);
            assertEquals("Hello", pieces.get(0), "the first token's SentencePiece space is stripped");
            assertTrue(pieces.contains(" world"), "later tokens keep their leading space: " + pieces);
        }
    }

    @Test
    void gpt2ByteLevelPiecesArriveWhole() {
        try (Tokenizer tok = Tokenizer.fromFiles(Shared.path("tokenizers/gpt2/tokenizer.json"), null)) {
            int[] ids = tok.encode(MIXED, false);
            List<String> pieces = streamAndCheck(tok, ids, false);
            assertTrue(pieces.contains(""), "multi-byte characters span several byte-level tokens");
        }
    }

    @Test
    void resetStartsANewSequence() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            StreamDecoder dec = tok.newStreamDecoder(true);
            for (int id : tok.encode("first", false)) {
                dec.next(id);
            }
            dec.reset();
            StringBuilder sb = new StringBuilder();
            for (int id : tok.encode("second one", false)) {
                sb.append(dec.next(id));
            }
            sb.append(dec.flush());
            assertEquals("second one", sb.toString());
        }
    }

    @Test
    void longStreamsMatchFullDecode() {
        try (Tokenizer tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"))) {
            String text = (MIXED + " ").repeat(20);   // exceeds the internal window trimming
            streamAndCheck(tok, tok.encode(text, true), true);
        }
    }
}
