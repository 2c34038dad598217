#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process environment as the node reads it: strictly, one variable at a time.
///
/// An optional variable that is set to the empty string counts as not set, so `FOO= cmd` and an
/// empty value rendered by a template behave like an absent variable.
struct Environment: Sendable {
    let values: [String: String]

    init(_ values: [String: String]) {
        self.values = values
    }

    /// The variables of this process, read from `environ` byte-wise.
    ///
    /// Each entry is split at its first `=` byte. (Splitting a Swift `String` at the character `=`
    /// misses it when the value starts with a combining mark, which forms one grapheme with the
    /// `=`; Foundation's `ProcessInfo.environment` drops such variables.) Entries that are not
    /// valid UTF-8 are skipped.
    static func process() -> Environment {
        var values: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: strlen(pointer))
            if let equals = bytes.firstIndex(of: UInt8(ascii: "=")),
                let name = String(validating: bytes[..<equals], as: UTF8.self),
                let value = String(validating: bytes[(equals + 1)...], as: UTF8.self),
                values[name] == nil
            {
                values[name] = value
            }
            entry += 1
        }
        return Environment(values)
    }

    /// The non-empty value of `name`, or nil.
    subscript(name: String) -> String? {
        guard let value = values[name], !value.isEmpty else { return nil }
        return value
    }

    /// The value of whichever of `name` and its `alias` is set; both set to different values is an error.
    func value(_ name: String, alias: String) throws(ConfigurationError) -> (name: String, value: String)? {
        switch (self[name], self[alias]) {
        case (nil, nil):
            return nil
        case (let value?, nil):
            return (name, value)
        case (nil, let value?):
            return (alias, value)
        case (let value?, let aliased?):
            guard value == aliased else {
                throw ConfigurationError(
                    variable: "\(name)/\(alias)",
                    message: "both are set, to different values (\(ConfigurationError.quote(value)) and \(ConfigurationError.quote(aliased))); set only \(name)"
                )
            }
            return (name, value)
        }
    }

    /// A TCP port (0-65535; 0 asks the system for a free port).
    func port(_ name: String, alias: String? = nil, default defaultValue: Int) throws(ConfigurationError) -> Int {
        let found: (name: String, value: String)?
        if let alias { found = try value(name, alias: alias) } else { found = self[name].map { (name, $0) } }
        guard let found else { return defaultValue }
        guard let port = Self.decimal(found.value), (0...65_535).contains(port) else {
            throw ConfigurationError(
                variable: found.name,
                message: "must be a port number 0-65535, got \(ConfigurationError.quote(found.value))")
        }
        return port
    }

    /// A whole number within `range`.
    func integer(_ name: String, in range: ClosedRange<Int>, default defaultValue: Int) throws(ConfigurationError) -> Int {
        guard let text = self[name] else { return defaultValue }
        guard let number = Self.decimal(text), range.contains(number) else {
            throw ConfigurationError(
                variable: name,
                message: "must be a whole number \(range.lowerBound)-\(range.upperBound), got \(ConfigurationError.quote(text))")
        }
        return number
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
    func boolean(_ name: String, default defaultValue: Bool) throws(ConfigurationError) -> Bool {
        guard let text = self[name] else { return defaultValue }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            throw ConfigurationError(variable: name, message: "must be true or false, got \(ConfigurationError.quote(text))")
        }
    }

    /// One of `choices` (exact, lowercase), mapped to its value.
    func choice<T>(_ name: String, _ choices: KeyValuePairs<String, T>, default defaultValue: T) throws(ConfigurationError) -> T {
        guard let text = self[name] else { return defaultValue }
        guard let match = choices.first(where: { $0.key == text }) else {
            let names = choices.map(\.key).joined(separator: ", ")
            throw ConfigurationError(variable: name, message: "must be one of \(names); got \(ConfigurationError.quote(text))")
        }
        return match.value
    }

    /// A comma-separated list; entries are trimmed and empty entries dropped.
    func list(_ name: String) -> [String] {
        list(self[name])
    }

    func list(_ text: String?) -> [String] {
        guard let text else { return [] }
        return text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    }

    /// Plain decimal digits only: no sign, no spaces, no `0x`.
    private static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(text)
    }
}

extension StringProtocol {
    /// The text without leading and trailing white space.
    func trimmingSpaces() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
            let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
