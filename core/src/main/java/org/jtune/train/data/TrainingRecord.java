package org.jtune.train.data;

import java.util.List;
import java.util.Objects;
import org.jtune.tokenizer.ChatMessage;

/**
 * One training record as read from a data file, before any prompt formatting: the shapes that
 * fine-tuning data comes in (plain text, prompt/completion, Alpaca instruction, chat). The shape
 * decides what carries the loss: everything for {@link Text}, the completion / output / assistant
 * turns otherwise. ShareGPT conversations are read into {@link Chat} with human→user, gpt→assistant.
 */
public sealed interface TrainingRecord {

    /** {@code {"text": ...}}: plain text, trained on entirely (continued pre-training). */
    record Text(String text) implements TrainingRecord {
        public Text {
            Objects.requireNonNull(text, "text");
        }
    }

    /**
     * {@code {"prompt", "completion"}} (also lm-eval's {@code {"context", "continuation"}}): the two
     * strings are concatenated exactly as given, so any separator must already be in the data.
     */
    record PromptCompletion(String prompt, String completion) implements TrainingRecord {
        public PromptCompletion {
            Objects.requireNonNull(prompt, "prompt");
            Objects.requireNonNull(completion, "completion");
        }
    }

    /** Alpaca {@code {"instruction", "input", "output"}}; a missing or null input is "". */
    record Instruction(String instruction, String input, String output) implements TrainingRecord {
        public Instruction {
            Objects.requireNonNull(instruction, "instruction");
            Objects.requireNonNull(input, "input");
            Objects.requireNonNull(output, "output");
        }
    }

    /** {@code {"messages": [{"role", "content"}...]}} or a ShareGPT conversation, non-empty. */
    record Chat(List<ChatMessage> messages) implements TrainingRecord {
        public Chat {
            messages = List.copyOf(messages);
            if (messages.isEmpty()) {
                throw new IllegalArgumentException("a chat needs at least one message");
            }
        }
    }
}
