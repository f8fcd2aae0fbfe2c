package org.jtune;

/**
 * An error the user can act on: bad input files, unsupported configuration, a prompt longer than
 * the context. The message says what is wrong and how to fix it; the CLI prints it without a stack
 * trace.
 */
public class JTuneException extends RuntimeException {
    public JTuneException(String message) {
        super(message);
    }

    public JTuneException(String message, Throwable cause) {
        super(message, cause);
    }
}
