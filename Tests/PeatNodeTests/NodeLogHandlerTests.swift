import Foundation
import Logging
import Testing

@testable import PeatNode

struct NodeLogHandlerTests {
    @Test func textLineHasMessageThenSortedFields() {
        let handler = NodeLogHandler(label: "peat.node", format: .text, level: .info)
        let line = handler.render(
            level: .info, message: "Mesh started node_id=peat-mesh-0 device_id=f15e5546858a28909aae7c0e24e0ffe1",
            metadata: ["zeta": "1", "alpha": "two words", "peer.id": "p1"], timestamp: "2026-01-01T00:00:00.000Z")
        #expect(
            line
                == #"2026-01-01T00:00:00.000Z INFO peat.node: Mesh started node_id=peat-mesh-0 device_id=f15e5546858a28909aae7c0e24e0ffe1 alpha="two words" peer.id=p1 zeta=1"#
        )
    }

    @Test func textLineCannotBeSplitByANewline() {
        let handler = NodeLogHandler(label: "peat.node", format: .text, level: .info)
        let line = handler.render(
            level: .warning, message: "first\nINFO forged", metadata: ["reason": "a\nb"], timestamp: "t")
        #expect(!line.contains("\n"))
        #expect(line == #"t WARN peat.node: first INFO forged reason="a\nb""#)
    }

    @Test func jsonLineIsValidJSONWithMetadata() throws {
        let handler = NodeLogHandler(label: "peat.node", format: .json, level: .info)
        let line = handler.render(
            level: .notice, message: "quote \" and \\ and \u{1}",
            metadata: ["addresses": .array(["10.0.0.1:11204", "10.0.0.2:11204"]), "count": "3"], timestamp: "t")
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "notice")
        #expect(object["message"] as? String == "quote \" and \\ and \u{1}")
        #expect(object["addresses"] as? [String] == ["10.0.0.1:11204", "10.0.0.2:11204"])
        #expect(object["count"] as? String == "3")
        #expect(object["target"] as? String == "peat.node")
    }

    @Test func timestampIsUTCWithMilliseconds() {
        let stamp = NodeLogHandler.timestamp()
        #expect(stamp.count == 24)
        #expect(stamp.hasSuffix("Z"))
        #expect(stamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil)
    }
}
