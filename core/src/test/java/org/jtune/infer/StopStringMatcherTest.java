package org.jtune.infer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class StopStringMatcherTest {
    @Test
    void holdsBackAPossibleStopStringAndCutsAtIt() {
        StopStringMatcher m = new StopStringMatcher(List.of("\nUser:"));
        StringBuilder out = new StringBuilder();
        for (String piece : new String[] {"Hello", " there", "\n", "Us", "er", ": more"}) {
            out.append(m.push(piece));
        }
        assertTrue(m.stopped());
        assertEquals("Hello there", out.toString());
    }

    @Test
    void releasesHeldTextThatTurnsOutNotToBeAStop() {
        StopStringMatcher m = new StopStringMatcher(List.of("###"));
        assertEquals("a", m.push("a#"));
        assertEquals("#b", m.push("b"));
        assertEquals("", m.push("#"));
        assertEquals("#", m.flush());
    }
}
