package org.jtune.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.jtune.JTuneException;
import org.jtune.testutil.Shared;
import org.jtune.tokenizer.ChatMessage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetReaderTest {
    @TempDir
    Path dir;

    private Path write(String name, String content) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, content);
        return p;
    }

    @Test
    void readsEveryShapeFromJsonl() throws IOException {
        Path f = write("mixed.jsonl", """
                {"text": "plain words"}
                {"prompt": "Q: 2+2?\\nA:", "completion": " 4"}

                {"instruction": "Add.", "input": "2 and 2", "output": "4"}
                {"instruction": "Say hi.", "output": "hi"}
                {"instruction": "Say bye.", "input": null, "output": "bye", "id": 7}
                {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
                {"id": "x", "conversations": [{"from": "human", "value": "Who?"}, {"from": "gpt", "value": "Me."}]}
                {"context": "Answer: ", "continuation": "yes"}
                """);
        DatasetReader.Result r = DatasetReader.read(f, false);
        assertEquals(8, r.records().size());
        assertEquals(0, r.skipped());
        assertEquals(new TrainingRecord.Text("plain words"), r.records().get(0));
        assertEquals(new TrainingRecord.PromptCompletion("Q: 2+2?\nA:", " 4"), r.records().get(1));
        assertEquals(new TrainingRecord.Instruction("Add.", "2 and 2", "4"), r.records().get(2));
        assertEquals(new TrainingRecord.Instruction("Say hi.", "", "hi"), r.records().get(3));
        assertEquals(new TrainingRecord.Instruction("Say bye.", "", "bye"), r.records().get(4));
        assertEquals(new TrainingRecord.Chat(List.of(new ChatMessage("system", "Be brief."),
                new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"))), r.records().get(5));
        assertEquals(new TrainingRecord.Chat(List.of(new ChatMessage("user", "Who?"),
                new ChatMessage("assistant", "Me."))), r.records().get(6));
        assertEquals(new TrainingRecord.PromptCompletion("Answer: ", "yes"), r.records().get(7));
        // The blank line 3 is skipped but still counted in line numbers.
        assertEquals(f + ":4", r.origins().get(2));
    }

    @Test
    void readsJsonArrayWithElementIndex() throws IOException {
        Path f = write("arr.json", """
                [
                  {"instruction": "a", "input": "", "output": "b"},
                  {"text": "t"}
                ]
                """);
        DatasetReader.Result r = DatasetReader.read(f, false);
        assertEquals(2, r.records().size());
        assertEquals(f + ":3 (element 1)", r.origins().get(1));
    }

    @Test
    void malformedLineFailsWithFileAndLineNumber() throws IOException {
        Path f = write("bad.jsonl", """
                {"text": "fine"}
                {"text": "fine too"}
                {"text": 42}
                """);
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(f, false));
        assertTrue(e.getMessage().contains(f + ":3"), e.getMessage());
        assertTrue(e.getMessage().contains("\"text\" must be a string but is a number"), e.getMessage());
        assertTrue(e.getMessage().contains("skipMalformed"), e.getMessage());
    }

    @Test
    void invalidJsonLineIsReportedWithItsLine() throws IOException {
        Path f = write("broken.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unclosed\n");
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(f, false));
        assertTrue(e.getMessage().contains(f + ":2: invalid JSON"), e.getMessage());
    }

    @Test
    void skipMalformedCountsAndKeepsTheReasons() throws IOException {
        Path f = write("some-bad.jsonl", """
                {"text": "fine"}
                not json at all
                [1, 2]
                {"foo": "bar"}
                {"messages": []}
                {"conversations": [{"from": "robot", "value": "beep"}]}
                {"messages": [{"role": "user", "content": "only a question"}]}
                {"instruction": "x", "output": ["not", "a", "string"]}
                {"prompt": "p", "completion": "c"}
                """);
        DatasetReader.Result r = DatasetReader.read(f, true);
        assertEquals(2, r.records().size());
        assertEquals(7, r.skipped());
        assertEquals(9, r.total());
        assertEquals(DatasetReader.MAX_KEPT_MESSAGES, r.skippedMessages().size());
        assertTrue(r.skippedMessages().get(0).startsWith(f + ":2: invalid JSON"), r.skippedMessages().get(0));
        assertTrue(r.skippedMessages().get(1).contains("expected a JSON object but found an array"));
        assertTrue(r.skippedMessages().get(2).contains("no known shape for keys [foo]"));
        assertTrue(r.skippedMessages().get(3).contains("\"messages\" is empty"));
        assertTrue(r.skippedMessages().get(4).contains("from is \"robot\""));
    }

    @Test
    void chatWithoutAssistantTurnIsMalformed() throws IOException {
        Path f = write("noassistant.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n");
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(f, false));
        assertTrue(e.getMessage().contains("no assistant turn"), e.getMessage());
    }

    @Test
    void prettyPrintedObjectGetsAHint() throws IOException {
        Path f = write("pretty.jsonl", "{\n  \"text\": \"x\"\n}\n");
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(f, false));
        assertTrue(e.getMessage().contains(f + ":1") && e.getMessage().contains("pretty-printed"), e.getMessage());
    }

    @Test
    void brokenArrayAlwaysFails() throws IOException {
        Path f = write("broken.json", "[\n{\"text\": \"a\"},\n{\"text\": \n");
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(f, true));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    }

    @Test
    void missingFileIsAnError() {
        JTuneException e = assertThrows(JTuneException.class, () -> DatasetReader.read(dir.resolve("nope.jsonl"), false));
        assertTrue(e.getMessage().contains("nope.jsonl"));
    }

    @Test
    void readsSharedAlpaca() {
        DatasetReader.Result r = DatasetReader.read(Shared.path("data/alpaca/alpaca_5000.json"), false);
        assertEquals(5000, r.records().size());
        r.records().forEach(x -> assertInstanceOf(TrainingRecord.Instruction.class, x));
    }

    @Test
    void readsSharedHuatuoWhichIsJsonlDespiteItsExtension() {
        DatasetReader.Result r = DatasetReader.read(Shared.path("data/huatuo_med/llama_data.json"), false);
        assertEquals(8658, r.records().size());
        assertInstanceOf(TrainingRecord.Instruction.class, r.records().getFirst());
    }

    @Test
    void readsSharedFastChatConversations() {
        DatasetReader.Result r = DatasetReader.read(Shared.path("data/fastchat_chat/dummy_conversation.json"), false);
        assertEquals(500, r.records().size());
        TrainingRecord.Chat first = assertInstanceOf(TrainingRecord.Chat.class, r.records().getFirst());
        assertEquals(new ChatMessage("user", "Who are you?"), first.messages().getFirst());
        assertEquals("assistant", first.messages().get(1).role());
    }

    @Test
    void readsSharedPubMedQaAsPromptCompletion() {
        DatasetReader.Result r = DatasetReader.read(Shared.path("data/pubmedqa/pubmed_qa_labeled.jsonl"), false);
        assertEquals(1000, r.records().size());
        TrainingRecord.PromptCompletion pc = assertInstanceOf(TrainingRecord.PromptCompletion.class, r.records().getFirst());
        assertTrue(pc.prompt().endsWith("Answer: "));
        assertEquals("yes", pc.completion());
    }

    @Test
    void readsSharedHeldoutText() {
        DatasetReader.Result r = DatasetReader.read(Shared.path("data/ref-heldout/heldout.jsonl"), false);
        assertEquals(130, r.records().size());
        assertInstanceOf(TrainingRecord.Text.class, r.records().getFirst());
    }
}
