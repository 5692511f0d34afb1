import TesseraModel
import Testing

@Suite("Record splitter")
struct RecordSplitterTests {
  /// Feeds `bytes` in chunks of `size` and returns the records with their lines.
  static func split(_ bytes: [UInt8], csv: Bool, chunk size: Int) -> [(String, Int)] {
    var splitter = RecordSplitter(csv: csv)
    var out: [RecordSplitter.Record] = []
    var at = 0
    while at < bytes.count {
      out += splitter.feed(Array(bytes[at..<min(bytes.count, at + size)]), final: false)
      at += size
    }
    out += splitter.feed([], final: true)
    return out.map { (String(decoding: $0.bytes, as: UTF8.self), $0.line) }
  }

  @Test("records and their lines do not depend on where the chunks end")
  func chunking() {
    let text = "a,b\n\"x\ny\",2\r\n\n  \n\"q\"\"\",\"\"\n5\" screen,3\nlast"
    let whole = Self.split(Array(text.utf8), csv: true, chunk: 1 << 20)
    #expect(whole.map(\.0) == ["a,b", "\"x\ny\",2", "\"q\"\"\",\"\"", "5\" screen,3", "last"])
    #expect(whole.map(\.1) == [1, 2, 6, 7, 8])
    for size in 1...9 {
      let pieces = Self.split(Array(text.utf8), csv: true, chunk: size)
      #expect(pieces.map(\.0) == whole.map(\.0), "chunks of \(size)")
      #expect(pieces.map(\.1) == whole.map(\.1), "chunks of \(size)")
    }
  }

  /// A quote opened and never closed makes the rest of a CSV file one record. Each chunk used to copy the whole
  /// record read so far, so the time grew with the square of its length: 32 MiB in 4 KiB chunks copied
  /// 128 GB, and a run over a large file with a stray quote near its start never finished.
  @Test("a record spanning many chunks costs time in proportion to its length")
  func longRecord() {
    var splitter = RecordSplitter(csv: true)
    let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
    let started = ContinuousClock.now
    #expect(splitter.feed(Array("id,name\n1,\"unclosed".utf8), final: false).count == 1)
    for _ in 0..<8192 { #expect(splitter.feed(chunk, final: false).isEmpty) }
    let last = splitter.feed(Array("\n2,b\n".utf8), final: true)
    #expect(ContinuousClock.now - started < .seconds(20))
    #expect(last.count == 1)
    #expect(last.first?.bytes.count == 11 + 8192 * 4096 + 4)
    #expect(last.first?.line == 2)
  }
}
