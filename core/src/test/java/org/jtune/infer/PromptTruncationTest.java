package org.jtune.infer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.jtune.JTuneException;
import org.junit.jupiter.api.Test;

class PromptTruncationTest {
    @Test
    void keepsTheNewestTokensAndTheLeadingBos() {
        int[] prompt = {1, 10, 11, 12, 13, 14};
        assertArrayEquals(new int[] {1, 13, 14}, PromptTruncation.keepLast(prompt, 5, 2, 1));
        assertArrayEquals(new int[] {12, 13, 14}, PromptTruncation.keepLast(prompt, 5, 2, -1));
        assertSame(prompt, PromptTruncation.keepLast(prompt, 10, 2, 1));
    }

    @Test
    void refusesAPromptLongerThanTheContextWithAHint() {
        JTuneException e = assertThrows(JTuneException.class,
                () -> PromptTruncation.requireFits(new int[100], 64, 8));
        assertTrue(e.getMessage().contains("--truncate"), e.getMessage());
        assertThrows(JTuneException.class, () -> PromptTruncation.keepLast(new int[3], 8, 8, 1));
    }
}
