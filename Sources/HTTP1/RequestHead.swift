/// A parsed request head. It owns a copy of the head's bytes; every part of
/// it is a range into `bytes`, so parsing allocates two arrays and no strings.
///
/// A value with its parts in one shared box, copied on write: a head is
/// handed from the connection's state machine to the handler and on to the
/// exchange, and as thirteen stored properties every copy was a `memcpy` and
/// four retains (about 900 instructions per proxied request); now it is one.
public struct RequestHead: Sendable {
    @usableFromInline
    final class Storage: @unchecked Sendable {  // changed only while uniquely referenced
        @usableFromInline var bytes: [UInt8]
        @usableFromInline var method: Method
        @usableFromInline var methodRange: Range<Int>
        @usableFromInline var target: Range<Int>
        @usableFromInline var targetForm: TargetForm
        @usableFromInline var path: Range<Int>
        @usableFromInline var canonicalPath: CanonicalPath
        @usableFromInline var minorVersion: Int
        @usableFromInline var fields: [HeaderField]
        @usableFromInline var framing: BodyFraming
        @usableFromInline var keepAlive: Bool
        @usableFromInline var expectContinue: Bool
        @usableFromInline var connection: ConnectionOptions

        @usableFromInline
        init(
            bytes: [UInt8], method: Method, methodRange: Range<Int>, target: Range<Int>, targetForm: TargetForm,
            path: Range<Int>, canonicalPath: CanonicalPath, minorVersion: Int, fields: [HeaderField],
            framing: BodyFraming, keepAlive: Bool, expectContinue: Bool, connection: ConnectionOptions
        ) {
            self.bytes = bytes
            self.method = method
            self.methodRange = methodRange
            self.target = target
            self.targetForm = targetForm
            self.path = path
            self.canonicalPath = canonicalPath
            self.minorVersion = minorVersion
            self.fields = fields
            self.framing = framing
            self.keepAlive = keepAlive
            self.expectContinue = expectContinue
            self.connection = connection
        }

        @usableFromInline
        func copy() -> Storage {
            Storage(
                bytes: bytes, method: method, methodRange: methodRange, target: target, targetForm: targetForm, path: path,
                canonicalPath: canonicalPath, minorVersion: minorVersion, fields: fields, framing: framing,
                keepAlive: keepAlive, expectContinue: expectContinue, connection: connection
            )
        }
    }

    @usableFromInline var storage: Storage

    public init(
        bytes: [UInt8], method: Method, methodRange: Range<Int>, target: Range<Int>, targetForm: TargetForm,
        path: Range<Int>, canonicalPath: CanonicalPath, minorVersion: Int, fields: [HeaderField],
        framing: BodyFraming, keepAlive: Bool, expectContinue: Bool, connection: ConnectionOptions
    ) {
        storage = Storage(
            bytes: bytes, method: method, methodRange: methodRange, target: target, targetForm: targetForm, path: path,
            canonicalPath: canonicalPath, minorVersion: minorVersion, fields: fields, framing: framing,
            keepAlive: keepAlive, expectContinue: expectContinue, connection: connection
        )
    }

    /// A head in `reused`, a box nothing else holds any more (the parser's
    /// spare, see `HeadParser`), refilled with these parts; a new box without one.
    init(
        reusing reused: Storage?, bytes: [UInt8], method: Method, methodRange: Range<Int>, target: Range<Int>,
        minorVersion: Int, fields: [HeaderField]
    ) {
        guard let reused else {
            storage = Storage(
                bytes: bytes, method: method, methodRange: methodRange, target: target, targetForm: .origin,
                path: target, canonicalPath: .asSent, minorVersion: minorVersion, fields: fields, framing: .none,
                keepAlive: minorVersion == 1, expectContinue: false, connection: ConnectionOptions())
            return
        }
        reused.bytes = bytes
        reused.method = method
        reused.methodRange = methodRange
        reused.target = target
        reused.targetForm = .origin
        reused.path = target
        reused.canonicalPath = .asSent
        reused.minorVersion = minorVersion
        reused.fields = fields
        reused.framing = .none
        reused.keepAlive = minorVersion == 1
        reused.expectContinue = false
        reused.connection = ConnectionOptions()
        storage = reused
    }

    @inlinable
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    @inlinable public var bytes: [UInt8] {
        get { storage.bytes }
        _modify { makeUnique(); yield &storage.bytes }
    }
    @inlinable public var method: Method {
        get { storage.method }
        _modify { makeUnique(); yield &storage.method }
    }
    @inlinable public var methodRange: Range<Int> {
        get { storage.methodRange }
        _modify { makeUnique(); yield &storage.methodRange }
    }
    @inlinable public var target: Range<Int> {
        get { storage.target }
        _modify { makeUnique(); yield &storage.target }
    }
    @inlinable public var targetForm: TargetForm {
        get { storage.targetForm }
        _modify { makeUnique(); yield &storage.targetForm }
    }
    /// The path part of the target, without the query (empty in absolute
    /// form without a path).
    @inlinable public var path: Range<Int> {
        get { storage.path }
        _modify { makeUnique(); yield &storage.path }
    }
    /// The path in the form every decision about it is taken on, made once
    /// while parsing (see `CanonicalPath`).
    @inlinable public var canonicalPath: CanonicalPath {
        get { storage.canonicalPath }
        _modify { makeUnique(); yield &storage.canonicalPath }
    }
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    @inlinable public var minorVersion: Int {
        get { storage.minorVersion }
        _modify { makeUnique(); yield &storage.minorVersion }
    }
    @inlinable public var fields: [HeaderField] {
        get { storage.fields }
        _modify { makeUnique(); yield &storage.fields }
    }
    @inlinable public var framing: BodyFraming {
        get { storage.framing }
        _modify { makeUnique(); yield &storage.framing }
    }
    @inlinable public var keepAlive: Bool {
        get { storage.keepAlive }
        _modify { makeUnique(); yield &storage.keepAlive }
    }
    @inlinable public var expectContinue: Bool {
        get { storage.expectContinue }
        _modify { makeUnique(); yield &storage.expectContinue }
    }
    /// What its `Connection` fields say (names listed there are hop-by-hop
    /// for this message).
    @inlinable public var connection: ConnectionOptions {
        get { storage.connection }
        _modify { makeUnique(); yield &storage.connection }
    }

    @inlinable public subscript(range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    /// The first field of a kind, if any.
    public func first(_ kind: FieldKind) -> HeaderField? {
        fields.first { $0.kind == kind }
    }

    /// Whether a field must not be forwarded: hop-by-hop by RFC 9110 §7.6.1,
    /// or named in this message's `Connection`.
    public func isHopByHop(_ field: HeaderField) -> Bool {
        connection.isHopByHop(field, in: bytes)
    }
}

public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

public enum TargetForm: Sendable, Equatable {
    /// `/path?query`
    case origin
    /// `http://authority/path?query`: `authority` and `path` are ranges of the head.
    case absolute(authority: Range<Int>, path: Range<Int>)
}

public enum Method: UInt8, Sendable {
    case get, head, post, put, delete, patch, options, trace, connect, other

    /// Safe methods (RFC 9110 §9.2.1): sending one twice changes nothing.
    public var isSafe: Bool { self == .get || self == .head || self == .options || self == .trace }

    static func classify(_ bytes: ArraySlice<UInt8>) -> Method {
        // Methods are case-sensitive (RFC 9110 §9.1).
        switch bytes.count {
        case 3:
            if bytes.equals("GET") { return .get }
            if bytes.equals("PUT") { return .put }
        case 4:
            if bytes.equals("POST") { return .post }
            if bytes.equals("HEAD") { return .head }
        case 5:
            if bytes.equals("PATCH") { return .patch }
            if bytes.equals("TRACE") { return .trace }
        case 6:
            if bytes.equals("DELETE") { return .delete }
        case 7:
            if bytes.equals("OPTIONS") { return .options }
            if bytes.equals("CONNECT") { return .connect }
        default: break
        }
        return .other
    }
}

/// Fields the server and proxy act on, recognised while parsing so no later
/// step compares names again.
public enum FieldKind: UInt8, Sendable {
    case other
    case host, contentLength, transferEncoding, connection, keepAlive
    case proxyAuthorization, proxyConnection, te, trailer, upgrade
    case expect, authorization, impTokenHeader, requestID, forwardedFor
    /// Agency accounts' sub-merchant (an account's `tier` is added without one).
    case tier
    /// PortOne V2's deduplication key (added to V2 payment calls without one).
    case idempotencyKey

    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyAuthorization, .proxyConnection, .te, .trailer, .transferEncoding,
            .upgrade:
            return true
        default:
            return false
        }
    }

    public static func classify(_ name: ArraySlice<UInt8>) -> FieldKind {
        name.withUnsafeBytes { classify($0) }
    }

    public static func classify(_ name: [UInt8]) -> FieldKind {
        name.withUnsafeBytes { classify($0) }
    }

    /// Recognises a field name, ignoring ASCII case. Not generic, so callers in
    /// other modules get this code and not a byte-by-byte walk through witness tables.
    public static func classify(_ name: UnsafeRawBufferPointer) -> FieldKind {
        switch name.count {
        case 2: if name.isLowercased("te") { return .te }
        case 4:
            if name.isLowercased("host") { return .host }
            if name.isLowercased("tier") { return .tier }
        case 6:
            if name.isLowercased("expect") { return .expect }
        case 7:
            if name.isLowercased("trailer") { return .trailer }
            if name.isLowercased("upgrade") { return .upgrade }
        case 10:
            if name.isLowercased("connection") { return .connection }
            if name.isLowercased("keep-alive") { return .keepAlive }
        case 12:
            if name.isLowercased("x-request-id") { return .requestID }
        case 13: if name.isLowercased("authorization") { return .authorization }
        case 14: if name.isLowercased("content-length") { return .contentLength }
        case 15:
            if name.isLowercased("x-forwarded-for") { return .forwardedFor }
            if name.isLowercased("idempotency-key") { return .idempotencyKey }
        case 16:
            if name.isLowercased("x-imptokenheader") { return .impTokenHeader }
            if name.isLowercased("proxy-connection") { return .proxyConnection }
        case 17: if name.isLowercased("transfer-encoding") { return .transferEncoding }
        case 19: if name.isLowercased("proxy-authorization") { return .proxyAuthorization }
        default: break
        }
        return .other
    }
}
