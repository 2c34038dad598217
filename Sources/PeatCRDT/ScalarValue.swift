/// A leaf value of a document.
public enum ScalarValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    /// Milliseconds since the Unix epoch.
    case timestamp(Int64)
    /// A counter: concurrent increments add up instead of one overwriting the other.
    case counter(Int64)
}

/// What a key or list element of a document holds: a scalar or a nested object.
public enum Value: Hashable, Sendable {
    case scalar(ScalarValue)
    case object(ObjectID, ObjectType)
}

/// A value as an edit describes it: a scalar, or a new empty object to create.
public enum NewValue: Hashable, Sendable {
    case scalar(ScalarValue)
    case map
    case list
    case text

    /// Convenience for common scalars.
    public static func int(_ v: Int64) -> NewValue { .scalar(.int(v)) }
    public static func string(_ v: String) -> NewValue { .scalar(.string(v)) }
    public static func double(_ v: Double) -> NewValue { .scalar(.double(v)) }
    public static func bool(_ v: Bool) -> NewValue { .scalar(.bool(v)) }
    public static let null = NewValue.scalar(.null)
}
