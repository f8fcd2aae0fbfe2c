package org.jtune.train.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.jtune.tokenizer.ChatMessage;
import org.jtune.tokenizer.ChatTemplate;
import org.jtune.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Against the real TinyLlama/Zephyr template of jtune-ref-llama-13m (BOS=1, EOS=2 "</s>"). */
class TokenizationTest {
    static Tokenizer tok;
    static final int BOS = 1;
    static final int EOS = 2;

    @BeforeAll
    static void load() {
        tok = Tokenizer.load(Shared.path("models/jtune-ref-llama-13m"));
        assertEquals(BOS, tok.bosTokenId().getAsInt());
        assertEquals(EOS, tok.eosTokenId().getAsInt());
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    private static Tokenization chat(int maxLength, boolean trainOnPrompt) {
        return new Tokenization(tok, PromptFormat.forTokenizer(tok), maxLength, trainOnPrompt);
    }

    /** The labelled positions' token ids, in order. */
    private static int[] labelled(Example e) {
        return Arrays.stream(e.labels()).filter(l -> l != Example.IGNORE).toArray();
    }

    @Test
    void alpacaRecordRendersThroughChatTemplateWithLossOnlyOnTheOutput() {
        var rec = new TrainingRecord.Instruction("Give three tips for staying healthy.", "Be brief.",
                "Eat well. Sleep. Move.");
        Example e = chat(512, false).tokenize(rec);

        String expected = "<|user|>\nGive three tips for staying healthy.\nBe brief.</s>\n<|assistant|>\n"
                + "Eat well. Sleep. Move.</s>";
        assertArrayEquals(tok.encode(expected, true), e.inputIds());
        assertEquals(BOS, e.inputIds()[0]);
        assertEquals(EOS, e.inputIds()[e.length() - 1]);

        int promptLen = tok.encode("<|user|>\nGive three tips for staying healthy.\nBe brief.</s>\n<|assistant|>\n", true).length;
        for (int i = 0; i < e.length(); i++) {
            assertEquals(i < promptLen ? Example.IGNORE : e.inputIds()[i], e.labels()[i], "label at " + i);
        }
        assertEquals("Eat well. Sleep. Move.</s>", tok.decode(labelled(e), false));
    }

    @Test
    void chatTemplateEosIsNotDoubled() {
        Example e = chat(512, false).tokenize(new TrainingRecord.Instruction("Hi", "", "Hello"));
        long eos = Arrays.stream(e.inputIds()).filter(t -> t == EOS).count();
        assertEquals(2, eos, "one </s> after the user turn, one after the answer: " + Arrays.toString(e.inputIds()));
        assertArrayEquals(tok.encode("<|user|>\nHi</s>\n<|assistant|>\nHello</s>", true), e.inputIds());
    }

    @Test
    void multiTurnShareGptLabelsEveryAssistantTurnAndNoUserTurn() {
        var rec = new TrainingRecord.Chat(List.of(
                new ChatMessage("system", "You are terse."),
                new ChatMessage("user", "Who are you?"),
                new ChatMessage("assistant", "I am Vicuna."),
                new ChatMessage("user", "Have a nice day!"),
                new ChatMessage("assistant", "You too!")));
        Example e = chat(512, false).tokenize(rec);
        String full = tok.chatTemplate().orElseThrow().render(rec.messages(), false);
        assertTrue(full.endsWith("You too!</s>\n"), full);
        // The example is the whole rendered conversation (minus the template's final newline).
        assertArrayEquals(tok.encode(full.substring(0, full.length() - 1), true), e.inputIds());

        // Split the labels into runs of consecutive labelled tokens: one per assistant turn.
        List<String> runs = new ArrayList<>();
        List<Integer> run = new ArrayList<>();
        for (int i = 0; i <= e.length(); i++) {
            if (i < e.length() && e.labels()[i] != Example.IGNORE) {
                assertEquals(e.inputIds()[i], e.labels()[i]);
                run.add(e.labels()[i]);
            } else if (!run.isEmpty()) {
                runs.add(tok.decode(run.stream().mapToInt(Integer::intValue).toArray(), false));
                run.clear();
            }
        }
        assertEquals(List.of("I am Vicuna.</s>", "You too!</s>"), runs);
        String unlabelled = tok.decode(Arrays.stream(e.inputIds()).filter(t -> t != EOS).toArray(), true);
        assertTrue(unlabelled.contains("Who are you?") && unlabelled.contains("Have a nice day!"));
    }

    @Test
    void sharedFastChatConversationsTokenizeWithExactBoundaries() {
        var read = DatasetReader.read(Shared.path("data/fastchat_chat/dummy_conversation.json"), false);
        var result = chat(2048, false).tokenizeAll(read.records().subList(0, 50), read.origins().subList(0, 50));
        assertEquals(50, result.examples().size());
        assertEquals(0, result.boundaryAdjusted(), "no token straddles a turn boundary in this template");
        for (Example e : result.examples()) {
            assertEquals(EOS, e.labels()[e.length() - 1]);
            assertEquals(Example.IGNORE, e.labels()[0]);
        }
    }

    @Test
    void classicAlpacaPromptWithAndWithoutInput() {
        Tokenization t = new Tokenization(tok, PromptFormat.alpaca(), 512, false);
        Example with = t.tokenize(new TrainingRecord.Instruction("Translate.", "Bonjour", "Hello"));
        String prompt = PromptFormat.ALPACA_PREAMBLE_WITH_INPUT
                + "### Instruction:\nTranslate.\n\n### Input:\nBonjour\n\n### Response:\n";
        int[] expected = tok.encode(prompt + "Hello", true);
        int[] withEos = Arrays.copyOf(expected, expected.length + 1);
        withEos[expected.length] = EOS;
        assertArrayEquals(withEos, with.inputIds());
        assertEquals("Hello</s>", tok.decode(labelled(with), false));

        Example without = t.tokenize(new TrainingRecord.Instruction("Say hi.", "", "Hi"));
        String text = tok.decode(without.inputIds(), false);
        assertTrue(text.contains("Below is an instruction that describes a task. Write a response"), text);
        assertFalse(text.contains("### Input:"), text);
        assertEquals("Hi</s>", tok.decode(labelled(without), false));
    }

    @Test
    void plainTextIsTrainedOnEverythingButBos() {
        Example e = chat(512, false).tokenize(new TrainingRecord.Text("The cat sat on the mat."));
        int[] ids = tok.encode("The cat sat on the mat.", true);
        assertArrayEquals(ids, Arrays.copyOf(e.inputIds(), ids.length));
        assertEquals(ids.length + 1, e.length());
        assertEquals(EOS, e.inputIds()[ids.length]);
        assertEquals(Example.IGNORE, e.labels()[0]);
        assertEquals(e.length() - 1, e.lossTokens());
    }

    @Test
    void promptCompletionIsConcatenatedAsIs() {
        Example e = chat(512, false).tokenize(new TrainingRecord.PromptCompletion("Question: 2+2?\nAnswer: ", "yes"));
        int[] ids = tok.encode("Question: 2+2?\nAnswer: yes", true);
        assertArrayEquals(ids, Arrays.copyOf(e.inputIds(), ids.length));
        assertEquals("yes</s>", tok.decode(labelled(e), false).strip());
    }

    @Test
    void trainOnPromptLabelsEveryToken() {
        Example e = chat(512, true).tokenize(new TrainingRecord.Instruction("Hi", "", "Hello"));
        assertArrayEquals(e.inputIds(), e.labels());
    }

    @Test
    void longExamplesAreTruncatedKeepingTheStartAndCounted() {
        var records = List.<TrainingRecord>of(
                new TrainingRecord.Text("word ".repeat(100)),
                new TrainingRecord.Text("short"),
                // The prompt alone fills maxLength: no response token left, so the example is dropped.
                new TrainingRecord.PromptCompletion("prompt ".repeat(100), "answer"));
        Tokenization.Result r = chat(16, false).tokenizeAll(records);
        assertEquals(2, r.truncated());
        assertEquals(1, r.droppedNoLoss());
        assertEquals(2, r.examples().size());
        Example cut = r.examples().getFirst();
        assertEquals(16, cut.length());
        assertArrayEquals(Arrays.copyOf(tok.encode("word ".repeat(100), true), 16), cut.inputIds());
        assertEquals(r.tokens(), r.examples().stream().mapToInt(Example::length).sum());
    }

    @Test
    void summaryReportsCountsAndLossFraction() {
        var read = DatasetReader.read(Shared.path("data/alpaca/alpaca_5000.json"), false);
        var first = new DatasetReader.Result(read.file(), read.records().subList(0, 200), read.origins().subList(0, 200), 0, List.of());
        var tokenized = chat(256, false).tokenizeAll(first.records(), first.origins());
        DatasetSummary s = DatasetSummary.of(first, tokenized);
        assertEquals(200, s.recordsRead());
        assertEquals(tokenized.examples().size(), s.examples());
        assertTrue(s.lossFraction() > 0.2 && s.lossFraction() < 0.95, "loss fraction " + s.lossFraction());
        assertTrue(s.format().contains("200 read"), s.format());
    }

    @Test
    void chatWithoutTemplateUsesAlpacaTurnsWithEosAfterEachResponse() {
        var rec = new TrainingRecord.Chat(List.of(
                new ChatMessage("user", "Who are you?"), new ChatMessage("assistant", "A model."),
                new ChatMessage("user", "Bye"), new ChatMessage("assistant", "Bye!")));
        Example e = new Tokenization(tok, PromptFormat.alpaca(), 512, false).tokenize(rec);
        String text = tok.decode(e.inputIds(), false);
        assertTrue(text.contains("### Instruction:\nWho are you?\n\n### Response:\nA model.</s>"), text);
        assertTrue(text.endsWith("### Instruction:\nBye\n\n### Response:\nBye!</s>"), text);
        assertEquals(2 + tok.encode("A model.", false).length + tok.encode("Bye!", false).length, e.lossTokens());
    }

    @Test
    void templateThatRewritesEarlierTurnsIsRejected() {
        // Renders only the last message, so the render of a prefix is not a prefix of the whole.
        ChatTemplate onlyLast = ChatTemplate.of(
                "{% for m in messages %}{% if loop.last %}{{ m['content'] }}{% endif %}{% endfor %}", "<s>", "</s>");
        var t = new Tokenization(tok, PromptFormat.chatTemplate(onlyLast), 512, false);
        var rec = new TrainingRecord.Chat(List.of(new ChatMessage("user", "q"), new ChatMessage("assistant", "a")));
        JTuneException e = assertThrows(JTuneException.class, () -> t.tokenizeAll(List.of(rec), List.of("f.jsonl:3")));
        assertTrue(e.getMessage().startsWith("f.jsonl:3: ") && e.getMessage().contains("not a prefix"), e.getMessage());
    }

    @Test
    void padIdIsTheModelsPadToken() {
        // tokenizer_config.json of the reference model says pad_token "</s>".
        assertEquals(EOS, Batcher.padIdFor(tok, Shared.path("models/jtune-ref-llama-13m")));
    }
}
