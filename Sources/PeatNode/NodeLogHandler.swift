import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's log output: one line per event on standard output, plain text or JSON.
///
/// Text lines read `<UTC timestamp> <LEVEL> <label>: <message> key=value ...` with no colour;
/// metadata keys are sorted so lines are stable for `grep`. Fields a log line's contract fixes
/// (such as `Mesh started node_id=… device_id=…`) are part of the message, in their documented
/// order. JSON lines carry `timestamp`, `level`, `target`, `message` and the metadata.
struct NodeLogHandler: LogHandler {
    /// Serialises whole lines so concurrent loggers never interleave bytes.
    private static let outputLock = Mutex(())

    let label: String
    let format: NodeConfiguration.LogFormat
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    /// Where lines go (standard output unless a test says otherwise).
    var fileDescriptor: Int32 = STDOUT_FILENO

    init(label: String, format: NodeConfiguration.LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = render(level: event.level, message: event.message.description, metadata: merged, timestamp: Self.timestamp()) + "\n"
        Self.outputLock.withLock { _ in
            let bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { buffer in
                    write(fileDescriptor, buffer.baseAddress! + offset, buffer.count - offset)
                }
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return  // Nowhere to report a failing log destination; never crash for it.
                }
            }
        }
    }

    /// One rendered line without the newline.
    func render(level: Logger.Level, message: String, metadata: Logger.Metadata, timestamp: String) -> String {
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(timestamp) \(Self.levelName(level)) \(label): \(Self.singleLine(message))"
            for key in keys {
                line += " \(key)=\(Self.textValue(metadata[key]!))"
            }
            return line
        case .json:
            var line = "{\"timestamp\":\(Self.jsonString(timestamp)),\"level\":\(Self.jsonString(level.rawValue))"
            line += ",\"target\":\(Self.jsonString(label)),\"message\":\(Self.jsonString(message))"
            for key in keys where !["timestamp", "level", "target", "message"].contains(key) {
                line += ",\(Self.jsonString(key)):\(Self.jsonValue(metadata[key]!))"
            }
            return line + "}"
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "TRACE"
        case .debug: "DEBUG"
        case .info: "INFO"
        case .notice: "NOTICE"
        case .warning: "WARN"
        case .error: "ERROR"
        case .critical: "CRITICAL"
        }
    }

    /// A metadata value for a text line: bare when it is a simple token, else quoted.
    static func textValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text):
            return quoteIfNeeded(text)
        case .stringConvertible(let convertible):
            return quoteIfNeeded(convertible.description)
        case .array(let values):
            return "[" + values.map(textValue).joined(separator: ",") + "]"
        case .dictionary(let values):
            return "{" + values.keys.sorted().map { "\($0)=\(textValue(values[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    private static func quoteIfNeeded(_ text: String) -> String {
        let needsQuotes = text.isEmpty || text.contains { $0.isWhitespace || $0 == "\"" || $0 == "=" || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } == true }
        return needsQuotes ? jsonString(text) : text
    }

    /// Messages stay on one line: a newline inside a message would forge a second log line.
    private static func singleLine(_ text: String) -> String {
        guard text.contains(where: { $0.isNewline }) else { return text }
        return String(text.map { $0.isNewline ? " " : $0 })
    }

    static func jsonValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): jsonString(text)
        case .stringConvertible(let convertible): jsonString(convertible.description)
        case .array(let values): "[" + values.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let values):
            "{" + values.keys.sorted().map { "\(jsonString($0)):\(jsonValue(values[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
            + ".\(pad(Int(now.tv_nsec) / 1_000_000, 3))Z"
    }
}
