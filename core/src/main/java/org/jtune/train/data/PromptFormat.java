package org.jtune.train.data;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.jtune.JTuneException;
import org.jtune.tokenizer.ChatMessage;
import org.jtune.tokenizer.ChatTemplate;
import org.jtune.tokenizer.Tokenizer;

/**
 * Turns a {@link TrainingRecord} into text split into prompt and response segments, which is what
 * decides where the loss goes. Two formats: the model's chat template (Alpaca records become a user
 * turn {@code instruction + "\n" + input} and an assistant turn {@code output}), or the classic
 * Stanford Alpaca prompt ("Below is an instruction..." / {@code ### Response:}) for models without a
 * template or when asked for. Plain text and prompt/completion are never templated: they are
 * concatenated as given in both formats.
 *
 * <p>Chat templates are rendered incrementally: the text of a conversation is
 * {@code render(all)}, and the segment boundaries are the lengths of {@code render(messages[0..i])}
 * (with the generation prompt before an assistant turn), which must be prefixes of the full text.
 * So the boundaries are exactly where the template puts them, including its separators and EOS
 * tokens; a template that rewrites earlier turns (e.g. one that drops reasoning from history) is
 * rejected with a message rather than mislabelled.
 */
public final class PromptFormat {
    public static final String ALPACA_PREAMBLE_WITH_INPUT = "Below is an instruction that describes a task,"
            + " paired with an input that provides further context. Write a response that appropriately"
            + " completes the request.\n\n";
    public static final String ALPACA_PREAMBLE = "Below is an instruction that describes a task."
            + " Write a response that appropriately completes the request.\n\n";

    /** One piece of rendered text; {@code response} pieces carry the loss. */
    public record Segment(String text, boolean response) {
        public Segment {
            Objects.requireNonNull(text, "text");
        }
    }

    /** A rendered record: the segments in order; their concatenation is the training text. */
    public record Rendered(List<Segment> segments) {
        public Rendered {
            segments = List.copyOf(segments);
        }

        public String text() {
            StringBuilder sb = new StringBuilder();
            segments.forEach(s -> sb.append(s.text()));
            return sb.toString();
        }
    }

    private final ChatTemplate template; // null: classic Alpaca

    private PromptFormat(ChatTemplate template) {
        this.template = template;
    }

    /** The model's chat template when it has one, otherwise the classic Alpaca prompt. */
    public static PromptFormat forTokenizer(Tokenizer tokenizer) {
        return new PromptFormat(tokenizer.chatTemplate().orElse(null));
    }

    public static PromptFormat chatTemplate(ChatTemplate template) {
        return new PromptFormat(Objects.requireNonNull(template, "template"));
    }

    public static PromptFormat alpaca() {
        return new PromptFormat(null);
    }

    public boolean usesChatTemplate() {
        return template != null;
    }

    public Rendered render(TrainingRecord record) {
        return switch (record) {
            case TrainingRecord.Text t -> new Rendered(List.of(new Segment(t.text(), true)));
            case TrainingRecord.PromptCompletion pc -> new Rendered(List.of(
                    new Segment(pc.prompt(), false), new Segment(pc.completion(), true)));
            case TrainingRecord.Instruction in -> template != null
                    ? renderChat(List.of(new ChatMessage("user", userTurn(in)),
                            new ChatMessage("assistant", in.output())))
                    : renderAlpaca(in);
            case TrainingRecord.Chat chat -> template != null
                    ? renderChat(chat.messages())
                    : renderAlpacaChat(chat.messages());
        };
    }

    /** The Alpaca convention for a chat model: the input, when there is one, on its own line. */
    static String userTurn(TrainingRecord.Instruction in) {
        return in.input().isEmpty() ? in.instruction() : in.instruction() + "\n" + in.input();
    }

    private static Rendered renderAlpaca(TrainingRecord.Instruction in) {
        String prompt = in.input().isEmpty()
                ? ALPACA_PREAMBLE + "### Instruction:\n" + in.instruction() + "\n\n### Response:\n"
                : ALPACA_PREAMBLE_WITH_INPUT + "### Instruction:\n" + in.instruction()
                        + "\n\n### Input:\n" + in.input() + "\n\n### Response:\n";
        return new Rendered(List.of(new Segment(prompt, false), new Segment(in.output(), true)));
    }

    /**
     * A conversation without a chat template, in the Alpaca style: a system message replaces the
     * preamble, each user turn is an instruction and each assistant turn a response. The EOS that
     * ends each response is added by {@link Tokenization} as a token, not as text.
     */
    private static Rendered renderAlpacaChat(List<ChatMessage> messages) {
        List<Segment> out = new ArrayList<>();
        StringBuilder prompt = new StringBuilder();
        int start = 0;
        if (messages.getFirst().role().equals("system")) {
            prompt.append(messages.getFirst().content()).append("\n\n");
            start = 1;
        } else {
            prompt.append(ALPACA_PREAMBLE);
        }
        for (int i = start; i < messages.size(); i++) {
            ChatMessage m = messages.get(i);
            if (m.role().equals("assistant")) {
                prompt.append("### Response:\n");
                out.add(new Segment(prompt.toString(), false));
                prompt.setLength(0);
                out.add(new Segment(m.content(), true));
                prompt.append("\n\n");
            } else {
                prompt.append("### Instruction:\n").append(m.content()).append("\n\n");
            }
        }
        if (!prompt.isEmpty()) {
            out.add(new Segment(prompt.toString(), false));
        }
        return new Rendered(out);
    }

    private Rendered renderChat(List<ChatMessage> messages) {
        String full = renderTemplate(messages, false);
        List<Segment> out = new ArrayList<>();
        int done = 0; // characters of full already assigned to segments
        for (int i = 0; i < messages.size(); i++) {
            if (!messages.get(i).role().equals("assistant")) {
                continue;
            }
            List<ChatMessage> before = messages.subList(0, i);
            // The generation prompt ("<|assistant|>\n") belongs to the prompt; templates whose
            // generation prompt is not how they render a real assistant turn fall back to without.
            int start = prefixLength(full, before.isEmpty() ? "" : renderTemplate(before, false), i);
            String withGen = renderTemplate(before, true);
            if (full.startsWith(withGen) && withGen.length() >= start) {
                start = withGen.length();
            }
            int end = prefixLength(full, renderTemplate(messages.subList(0, i + 1), false), i + 1);
            if (start < done || end < start) {
                throw templateNotIncremental(i);
            }
            out.add(new Segment(full.substring(done, start), false));
            out.add(new Segment(full.substring(start, end), true));
            done = end;
        }
        out.add(new Segment(full.substring(done), false));
        out.removeIf(s -> s.text().isEmpty() && !s.response());
        return new Rendered(out);
    }

    private int prefixLength(String full, String prefix, int messages) {
        if (!full.startsWith(prefix)) {
            throw templateNotIncremental(messages);
        }
        return prefix.length();
    }

    private static JTuneException templateNotIncremental(int messages) {
        return new JTuneException("the chat template renders the first " + messages + " messages as text"
                + " that is not a prefix of the whole conversation, so prompt and response tokens cannot be"
                + " told apart; use the Alpaca prompt format instead, or a template that renders turns"
                + " independently");
    }

    private String renderTemplate(List<ChatMessage> messages, boolean addGenerationPrompt) {
        try {
            return template.render(messages, addGenerationPrompt);
        } catch (JTuneException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new JTuneException("the chat template failed on a conversation with roles "
                    + messages.stream().map(ChatMessage::role).toList() + ": " + e.getMessage(), e);
        }
    }
}
