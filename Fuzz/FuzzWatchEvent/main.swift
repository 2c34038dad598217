import PeatDiscovery
import PeatFuzzSupport
import PeatKubernetesDiscovery

/// `WatchEventDecoder.feed(_:)` on a watch body cut into arbitrary chunks, with a small or the
/// default line limit. Each feed throws `DiscoveryError` (the caller then lists again, so the run
/// stops) or returns the events its chunk completed; nothing it buffers exceeds the line limit.
///
/// Input: a mode byte (line limit), then chunks (a length byte and that many bytes) until the end.
enum WatchEventTarget {
    static let limits = [256, 4096, 8 * 1024 * 1024]

    static func run(_ bytes: [UInt8]) {
        var input = FuzzInput(bytes)
        var decoder = WatchEventDecoder(maximumLineLength: limits[input.choice(limits.count)])
        while !input.isAtEnd {
            let chunk = input.bytes(Int(input.byte()))
            do {
                _ = try decoder.feed(chunk)
            } catch {
                fuzzInvariant(error.code == .malformedResponse, "WatchEventDecoder threw \(error.code)")
                return
            }
        }
    }

    static func seeds() -> [(name: String, bytes: [UInt8])] {
        let slice =
            #"{"metadata":{"name":"peat-mesh-abc12","resourceVersion":"4712"},"addressType":"IPv4","#
            + #""endpoints":[{"addresses":["10.42.0.7"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","name":"peat-mesh-1"}}],"#
            + #""ports":[{"name":"sync","port":11204}]}"#
        let body =
            [
                #"{"type":"ADDED","object":\#(slice)}"#,
                #"{"type":"MODIFIED","object":\#(slice)}"#,
                #"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"4800"}}}"#,
                #"{"type":"DELETED","object":\#(slice)}"#,
                #"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#,
            ].joined(separator: "\n") + "\n"
        /// Mode, then the body in chunks of `size` bytes.
        func script(mode: UInt8, _ text: String, chunk size: Int = 255) -> [UInt8] {
            let stream = Array(text.utf8)
            var out = [mode]
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + size)
                out.append(UInt8(end - offset))
                out += stream[offset..<end]
                offset = end
            }
            return out
        }
        return [
            ("events", script(mode: 2, body)),
            ("events-small-chunks", script(mode: 1, body, chunk: 7)),
            ("events-limit-256", script(mode: 0, body)),
            ("blank-lines", script(mode: 1, "\r\n \n\n" + body)),
            ("bookmark-without-version", script(mode: 1, #"{"type":"BOOKMARK","object":{"metadata":{}}}"# + "\n")),
            ("unknown-type", script(mode: 1, #"{"type":"SYNC","object":{}}"# + "\n")),
            ("added-without-object", script(mode: 1, #"{"type":"ADDED"}"# + "\n")),
            ("half-line", script(mode: 1, String(body.prefix(100)))),
        ]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    WatchEventTarget.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(seeds: WatchEventTarget.seeds)
