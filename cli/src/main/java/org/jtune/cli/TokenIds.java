package org.jtune.cli;

import java.util.Arrays;
import org.jtune.JTuneException;

/** Parses {@code --ids 1,2,3}. */
final class TokenIds {
    private TokenIds() {
    }

    static int[] parse(String csv) {
        try {
            int[] ids = Arrays.stream(csv.split("[,\\s]+")).filter(s -> !s.isEmpty()).mapToInt(Integer::parseInt).toArray();
            if (ids.length == 0) {
                throw new JTuneException("--ids is empty; give comma-separated token ids, e.g. --ids 1,450,4996");
            }
            return ids;
        } catch (NumberFormatException e) {
            throw new JTuneException("--ids must be comma-separated integers, e.g. --ids 1,450,4996; got \"" + csv + "\"");
        }
    }
}
