package org.jtune.cli;

import org.jtune.JTuneException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code jtune} command: one subcommand per job. User errors print one clear line, not a stack trace. */
@Command(name = "jtune", mixinStandardHelpOptions = true, version = "jtune 0.1.0",
        description = "Load, run, fine-tune and quantize Hugging Face language models on the JVM.",
        subcommands = {GenerateCommand.class, ChatCommand.class, InfoCommand.class, ScoreCommand.class, RandomModelCommand.class, BenchCommand.class, QuantizeCommand.class, FinetuneCommand.class, MergeCommand.class, EvalCommand.class,
                CommandLine.HelpCommand.class})
public final class Main {
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns its exit code (tests call this). */
    public static int run(String... args) {
        return configure(new CommandLine(new Main())).execute(args);
    }

    /** Installs the error handling: a JTuneException anywhere in the cause chain becomes one line and exit code 2. */
    static CommandLine configure(CommandLine cli) {
        cli.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            Throwable t = ex;
            while (!(t instanceof JTuneException) && t.getCause() != null && t.getCause() != t) {
                t = t.getCause();
            }
            if (t instanceof JTuneException) {
                cmd.getErr().println("jtune: error: " + t.getMessage());
                return 2;
            }
            throw ex;
        });
        return cli;
    }
}
