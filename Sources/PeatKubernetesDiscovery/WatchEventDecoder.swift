import Foundation
public import PeatDiscovery

/// One event of a Kubernetes watch stream.
public enum WatchEvent: Sendable, Equatable {
    case added(EndpointSlice)
    case modified(EndpointSlice)
    case deleted(EndpointSlice)
    /// Only `metadata.resourceVersion` is meaningful: remember it, nothing else.
    case bookmark(resourceVersion: String)
    /// An in-stream error `Status`; code 410 ("Expired") means: list again.
    case error(code: Int, reason: String?)
}

/// Splits a chunked watch body into events: newline-terminated JSON objects that chunks may cut
/// anywhere (half an event, or several in one chunk).
///
/// A line that is not a valid event is an error (the caller re-lists); a line longer than
/// `maximumLineLength` is refused before it is buffered further.
public struct WatchEventDecoder: Sendable {
    public let maximumLineLength: Int
    private var buffer: [UInt8] = []

    public init(maximumLineLength: Int = 8 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    /// Feeds a chunk; returns the events completed by it, in order.
    public mutating func feed(_ chunk: some Sequence<UInt8>) throws(DiscoveryError) -> [WatchEvent] {
        buffer.append(contentsOf: chunk)
        var events: [WatchEvent] = []
        var start = 0
        while let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = buffer[start..<newline]
            start = newline + 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
            events.append(try Self.decode(Data(line)))
        }
        buffer.removeFirst(start)
        guard buffer.count <= maximumLineLength else {
            throw DiscoveryError(code: .malformedResponse, message: "a watch event exceeds \(maximumLineLength) bytes")
        }
        return events
    }

    private struct RawEvent: Decodable {
        let type: String
        let object: RawObject?
    }

    private struct RawObject: Decodable {
        let kind: String?
        let code: Int?
        let reason: String?
        let metadata: EndpointSlice.Metadata?
    }

    static func decode(_ line: Data) throws(DiscoveryError) -> WatchEvent {
        let raw: RawEvent
        do {
            raw = try JSONDecoder().decode(RawEvent.self, from: line)
        } catch {
            throw DiscoveryError(code: .malformedResponse, message: "a watch line is not a watch event", cause: error)
        }
        switch raw.type {
        case "ADDED": return .added(try EndpointSlice.decode(objectData(line)))
        case "MODIFIED": return .modified(try EndpointSlice.decode(objectData(line)))
        case "DELETED": return .deleted(try EndpointSlice.decode(objectData(line)))
        case "BOOKMARK":
            guard let version = raw.object?.metadata?.resourceVersion else {
                throw DiscoveryError(code: .malformedResponse, message: "a BOOKMARK event without a resourceVersion")
            }
            return .bookmark(resourceVersion: version)
        case "ERROR":
            return .error(code: raw.object?.code ?? 0, reason: raw.object?.reason)
        default:
            throw DiscoveryError(code: .malformedResponse, message: "unknown watch event type \"\(raw.type.prefix(32))\"")
        }
    }

    /// The `object` member of an event line, re-encoded for the slice decoder.
    private static func objectData(_ line: Data) throws(DiscoveryError) -> Data {
        do {
            guard let event = try JSONSerialization.jsonObject(with: line) as? [String: Any], let object = event["object"] else {
                throw DiscoveryError(code: .malformedResponse, message: "a watch event without an object")
            }
            return try JSONSerialization.data(withJSONObject: object)
        } catch let error as DiscoveryError {
            throw error
        } catch {
            throw DiscoveryError(code: .malformedResponse, message: "a watch event object is not JSON", cause: error)
        }
    }
}
