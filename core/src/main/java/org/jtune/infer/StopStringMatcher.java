package org.jtune.infer;

import java.util.List;

/**
 * Streams text while watching for stop strings: text that could still become the start of a stop
 * string is held back until it is known not to be one, so a stop string never reaches the user.
 */
final class StopStringMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean stopped;

    StopStringMatcher(List<String> stops) {
        this.stops = stops.stream().filter(s -> !s.isEmpty()).toList();
    }

    boolean stopped() {
        return stopped;
    }

    /** Adds text; returns what can be released now (everything before a stop string, once one appears). */
    String push(String text) {
        if (stopped) {
            return "";
        }
        pending.append(text);
        int cut = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (cut < 0 || i < cut)) {
                cut = i;
            }
        }
        if (cut >= 0) {
            stopped = true;
            String out = pending.substring(0, cut);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        String held = pending.toString();
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, held.length()); k > hold; k--) {
                if (held.regionMatches(held.length() - k, s, 0, k)) {
                    hold = k;
                    break;
                }
            }
        }
        String out = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return out;
    }

    /** At the end: whatever was held back (it never completed a stop string). */
    String flush() {
        String out = stopped ? "" : pending.toString();
        pending.setLength(0);
        return out;
    }
}
