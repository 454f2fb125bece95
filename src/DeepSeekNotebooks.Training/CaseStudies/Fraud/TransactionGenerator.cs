using System.Globalization;

namespace DeepSeekNotebooks.Training.CaseStudies.Fraud;

/// <summary>Settings of <see cref="TransactionGenerator"/> (recorded in the manifest).</summary>
public sealed record TransactionGeneratorOptions
{
    public int TrainCount { get; init; } = 2400;
    public int ValidationCount { get; init; } = 600;
    /// <summary>Accounts in <c>test</c> (shortcut device independent of the label) and, the same accounts with the
    /// shortcut device planted at the training rates, in <c>test_shortcut</c>.</summary>
    public int TestCount { get; init; } = 800;
    /// <summary>P(the latest transaction is fraudulent).</summary>
    public double FraudRate { get; init; } = 0.25;
    /// <summary>P(the latest transaction is at night, 00–06 h | legitimate).</summary>
    public double NightRateLegitimate { get; init; } = 0.15;
    /// <summary>P(the latest transaction is at night | fraudulent): fraud happens more at night, with another mix.</summary>
    public double NightRateFraud { get; init; } = 0.45;
    /// <summary>P(a fraud signal is present | its fraud pattern): each of the pattern's signals is drawn with this probability.</summary>
    public double SignalRate { get; init; } = 0.8;
    /// <summary>P(a legitimate transaction shows one signal by chance), per signal (travel abroad, a big electronics purchase, …).</summary>
    public double NoiseRate { get; init; } = 0.06;
    /// <summary>P(the latest device is the shortcut fingerprint | fraud) in train, validation and test_shortcut.</summary>
    public double ShortcutRateFraud { get; init; } = 0.55;
    /// <summary>P(the latest device is the shortcut fingerprint | legitimate) in train, validation and test_shortcut.</summary>
    public double ShortcutRateLegitimate { get; init; } = 0.03;

    /// <summary>P(shortcut device) in <c>test</c>, for both classes: the training marginal, so only the correlation is removed.</summary>
    public double ShortcutRateTest => FraudRate * ShortcutRateFraud + (1 - FraudRate) * ShortcutRateLegitimate;

    public void Validate()
    {
        if (TrainCount < 20 || ValidationCount < 20 || TestCount < 20)
            throw new ArgumentException($"each split needs at least 20 accounts (train {TrainCount}, validation {ValidationCount}, test {TestCount})");
        foreach (var (name, p) in new[] { ("fraud rate", FraudRate), ("night rate (legitimate)", NightRateLegitimate), ("night rate (fraud)", NightRateFraud),
                     ("signal rate", SignalRate), ("noise rate", NoiseRate), ("shortcut rate (fraud)", ShortcutRateFraud), ("shortcut rate (legitimate)", ShortcutRateLegitimate) })
            if (!(p is >= 0 and <= 1)) throw new ArgumentException($"{name} must be a probability in [0, 1], got {p}");
        if (FraudRate is 0 or 1) throw new ArgumentException($"fraud rate must leave both classes, got {FraudRate}");
    }
}

/// <summary>The fields of a transaction, in token order; an example is [account age] then <see cref="TransactionGenerator.Transactions"/> × these.</summary>
public enum TransactionField
{
    /// <summary>The account's age bucket (one token at position 0, not per transaction).</summary>
    AccountAge,
    /// <summary>Hour of the day, 3-hour buckets.</summary>
    Hour,
    /// <summary>Time since the account's previous transaction.</summary>
    Gap,
    /// <summary>Amount bucket (log scale).</summary>
    Amount,
    /// <summary>Merchant category.</summary>
    Merchant,
    /// <summary>Region of the transaction.</summary>
    Geography,
    /// <summary>Device fingerprint.</summary>
    Device,
}

/// <summary>
/// Synthetic card transactions with planted ground truth (case study 09). Each example is one account's last
/// <see cref="Transactions"/> transactions, each written as six tokens (hour, gap, amount, merchant, geography, device)
/// after one account-age token; the label says whether the <b>latest</b> transaction is fraudulent.
/// <para>Legitimate behaviour follows a per-account profile: a home region, a usual device (kept with P 0.85 per
/// transaction, else a random other fingerprint, for both classes: device novelty is <i>not</i> a cause — it correlates
/// with fraud only through the planted fingerprint, which is usually new to the account), two or three
/// everyday merchant categories, daytime hours, a typical amount. Fraud follows one of two patterns by time of day —
/// the planted <b>night-time distribution shift</b>:</para>
/// <list type="bullet">
/// <item><b>day (06–24 h): card-not-present</b> — the latest transaction abroad or outside the home region,
/// at an electronics / gift-card merchant, for 300–3 000 (each signal with P <see cref="TransactionGeneratorOptions.SignalRate"/>);</item>
/// <item><b>night (00–06 h): account takeover burst</b> — the last three transactions less than 2 minutes apart, the
/// two before the latest small "card tests" (&lt; 10), the latest at a digital-goods / crypto / ATM merchant, in the
/// home region (each signal with P SignalRate).</item>
/// </list>
/// Legitimate transactions show each signal by chance with P <see cref="TransactionGeneratorOptions.NoiseRate"/>.
/// The planted <b>spurious correlation</b>: the latest device is fingerprint <see cref="ShortcutDevice"/> with P 0.55
/// on fraud and 0.03 on legitimate accounts in train, validation and test_shortcut; in <c>test</c> the same accounts
/// have it with the training marginal for both classes (independent of the label).
/// </summary>
public sealed class TransactionGenerator : CaseStudyGenerator
{
    /// <summary>Transactions per account window.</summary>
    public const int Transactions = 6;
    /// <summary>Fields per transaction (hour, gap, amount, merchant, geography, device).</summary>
    public const int FieldsPerTransaction = 6;
    /// <summary>Input length: the account-age token plus the transactions' fields (the model input appends [CLS]).</summary>
    public const int Length = 1 + Transactions * FieldsPerTransaction;

    public override string Name => FraudCaseStudy.Name;
    public override string Version => "1.0";
    public TransactionGeneratorOptions Options { get; }

    public TransactionGenerator(TransactionGeneratorOptions? options = null)
    {
        Options = options ?? new TransactionGeneratorOptions();
        Options.Validate();
    }

    public static readonly string[] Classes = { "legitimate", "fraud" };

    public static readonly string[] AccountAges = { "age:<30d", "age:30-90d", "age:90d-1y", "age:1-3y", "age:3y+" };
    public static readonly string[] Hours = { "hour:00-03", "hour:03-06", "hour:06-09", "hour:09-12", "hour:12-15", "hour:15-18", "hour:18-21", "hour:21-24" };
    public static readonly string[] Gaps = { "gap:<2m", "gap:2m-1h", "gap:1h-1d", "gap:>1d" };
    public static readonly string[] Amounts = { "amt:<10", "amt:10-30", "amt:30-100", "amt:100-300", "amt:300-1k", "amt:1k-3k", "amt:3k+" };
    public static readonly string[] Merchants =
        { "mcc:grocery", "mcc:fuel", "mcc:restaurant", "mcc:pharmacy", "mcc:travel", "mcc:electronics", "mcc:gift_cards", "mcc:digital_goods", "mcc:crypto", "mcc:atm" };
    public static readonly string[] Geographies = { "geo:north", "geo:south", "geo:east", "geo:west", "geo:central", "geo:coast", "geo:abroad_eu", "geo:abroad_other" };
    public static readonly string[] Devices =
        { "dev:0c41", "dev:19be", "dev:2d07", "dev:3a9f", "dev:4e12", "dev:5b6c", "dev:6f80", "dev:7f3a", "dev:8d25", "dev:9a4e", "dev:a7c3", "dev:b21d" };
    /// <summary>The fingerprint planted as the spurious correlate of fraud.</summary>
    public const string ShortcutDevice = "dev:7f3a";

    private static readonly string[][] FieldTokens = { AccountAges, Hours, Gaps, Amounts, Merchants, Geographies, Devices };
    private static readonly int[] FieldOffsets = FieldTokens.Select((_, i) => FieldTokens.Take(i).Sum(t => t.Length)).ToArray();

    /// <summary>Every input token name, field by field (account age, hour, gap, amount, merchant, geography, device).</summary>
    public static readonly string[] TokenNames = FieldTokens.SelectMany(t => t).ToArray();

    /// <summary>The token id of value <paramref name="value"/> of <paramref name="field"/>.</summary>
    public static int Token(TransactionField field, int value) =>
        value >= 0 && value < FieldTokens[(int)field].Length ? FieldOffsets[(int)field] + value
        : throw new ArgumentOutOfRangeException(nameof(value), value, $"{field} has values 0..{FieldTokens[(int)field].Length - 1}");

    /// <summary>The token id named <paramref name="name"/> (e.g. <c>dev:7f3a</c>).</summary>
    public static int Token(string name)
    {
        int i = Array.IndexOf(TokenNames, name);
        return i >= 0 ? i : throw new ArgumentException($"no transaction token '{name}'; tokens look like {TokenNames[0]}, {Hours[0]}, {Devices[0]}", nameof(name));
    }

    /// <summary>The field a token id belongs to, and its value within the field.</summary>
    public static (TransactionField Field, int Value) Decode(int token)
    {
        for (int f = FieldTokens.Length - 1; f >= 0; f--)
            if (token >= FieldOffsets[f])
                return token < FieldOffsets[f] + FieldTokens[f].Length ? ((TransactionField)f, token - FieldOffsets[f])
                    : throw new ArgumentOutOfRangeException(nameof(token), token, $"input tokens are 0..{TokenNames.Length - 1}");
        throw new ArgumentOutOfRangeException(nameof(token), token, $"input tokens are 0..{TokenNames.Length - 1}");
    }

    /// <summary>The field at input position <paramref name="position"/> (0 = account age).</summary>
    public static TransactionField FieldAt(int position) =>
        position == 0 ? TransactionField.AccountAge
        : position > 0 && position < Length ? (TransactionField)(1 + (position - 1) % FieldsPerTransaction)
        : throw new ArgumentOutOfRangeException(nameof(position), position, $"inputs have positions 0..{Length - 1}");

    /// <summary>The transaction (0 = oldest, <see cref="Transactions"/> − 1 = latest) at a position; −1 for the account-age token.</summary>
    public static int TransactionAt(int position) =>
        position == 0 ? -1 : position > 0 && position < Length ? (position - 1) / FieldsPerTransaction
        : throw new ArgumentOutOfRangeException(nameof(position), position, $"inputs have positions 0..{Length - 1}");

    /// <summary>The position of <paramref name="field"/> of transaction <paramref name="transaction"/>.</summary>
    public static int Position(int transaction, TransactionField field) =>
        field == TransactionField.AccountAge ? 0
        : transaction is >= 0 and < Transactions ? 1 + transaction * FieldsPerTransaction + ((int)field - 1)
        : throw new ArgumentOutOfRangeException(nameof(transaction), transaction, $"transactions are 0..{Transactions - 1}");

    /// <summary>Position of the latest transaction's device: where the shortcut lives.</summary>
    public static int LatestDevicePosition => Position(Transactions - 1, TransactionField.Device);

    private const int Night0 = 0, Night1 = 1;                  // hour buckets 00–03, 03–06
    private static readonly int[] DayHours = { 2, 3, 4, 5, 6, 7 };
    private static readonly int[] Everyday = { 0, 1, 2, 3, 4 };       // grocery … travel
    private static readonly int[] DayFraudMerchants = { 5, 6 };       // electronics, gift cards
    private static readonly int[] NightFraudMerchants = { 7, 8, 9 };  // digital goods, crypto, ATM
    private const int Domestic = 6;                                   // geographies 0..5 are domestic

    /// <summary>
    /// The account of (<paramref name="seed"/>, <paramref name="index"/>) with its label. <paramref name="labelIndependentShortcut"/>:
    /// false = the latest device is the shortcut fingerprint at the training rates (by class), true = at the training
    /// marginal for both classes (the test split); drawn from a stream of its own, so both variants share everything else.
    /// </summary>
    public CaseStudyExample Render(long seed, long index, string split, string id, bool labelIndependentShortcut)
    {
        var rng = ExampleRandom(seed, index);
        var o = Options;
        bool fraud = rng.NextDouble() < o.FraudRate;
        bool night = rng.NextDouble() < (fraud ? o.NightRateFraud : o.NightRateLegitimate);
        // The account's profile.
        int age = Pick(rng, new[] { 0.08, 0.14, 0.26, 0.30, 0.22 });
        int home = rng.Next(Domestic);
        int usualDevice = rng.Next(Devices.Length);
        var merchants = Everyday.OrderBy(_ => rng.Next()).Take(2 + rng.Next(2)).ToArray();
        int amountLevel = 1 + rng.Next(3);                        // typical amount 10–30 … 100–300
        var tx = new int[Transactions, FieldsPerTransaction];   // values per field (hour, gap, amount, merchant, geo, device)
        for (int t = 0; t < Transactions; t++)
        {
            tx[t, 0] = DayHours[rng.Next(DayHours.Length)];
            tx[t, 1] = rng.NextDouble() < 0.55 ? 2 : rng.NextDouble() < 0.8 ? 3 : 1;
            tx[t, 2] = Math.Clamp(amountLevel + (rng.NextDouble() < 0.5 ? 0 : rng.NextDouble() < 0.5 ? -1 : 1), 0, Amounts.Length - 1);
            tx[t, 3] = merchants[rng.Next(merchants.Length)];
            tx[t, 4] = rng.NextDouble() < 0.92 ? home : rng.Next(Domestic);
            tx[t, 5] = rng.NextDouble() < 0.85 ? usualDevice : rng.Next(Devices.Length);
        }
        int last = Transactions - 1;
        if (night) tx[last, 0] = rng.NextDouble() < 0.5 ? Night0 : Night1;
        bool Signal() => rng.NextDouble() < (fraud ? o.SignalRate : o.NoiseRate);
        bool geoMismatch = false, riskyDay = false, highAmount = false, burst = false, cardTests = false, riskyNight = false;
        if (!night || !fraud)
        {
            // Day fraud pattern (or, on legitimate accounts, the same signals by chance); the signals of the night pattern
            // appear by chance on legitimate accounts too.
            bool dayPattern = !night && fraud;
            if (dayPattern ? rng.NextDouble() < o.SignalRate : rng.NextDouble() < o.NoiseRate)
            {
                geoMismatch = true;
                tx[last, 4] = rng.NextDouble() < 0.7 ? 6 + rng.Next(2) : (home + 1 + rng.Next(Domestic - 1)) % Domestic;
            }
            if (dayPattern ? rng.NextDouble() < o.SignalRate : rng.NextDouble() < o.NoiseRate) { riskyDay = true; tx[last, 3] = DayFraudMerchants[rng.Next(2)]; }
            if (dayPattern ? rng.NextDouble() < o.SignalRate : rng.NextDouble() < o.NoiseRate) { highAmount = true; tx[last, 2] = 4 + rng.Next(2); }
            if (!fraud)
            {
                if (rng.NextDouble() < o.NoiseRate) { burst = true; tx[last, 1] = tx[last - 1, 1] = tx[last - 2, 1] = 0; }
                if (rng.NextDouble() < o.NoiseRate) { cardTests = true; tx[last - 1, 2] = tx[last - 2, 2] = 0; }
                if (rng.NextDouble() < o.NoiseRate) { riskyNight = true; tx[last, 3] = NightFraudMerchants[rng.Next(3)]; }
            }
        }
        else
        {
            // Night fraud: a takeover burst from the home region.
            if (Signal()) { burst = true; tx[last, 1] = tx[last - 1, 1] = tx[last - 2, 1] = 0; tx[last - 1, 0] = tx[last - 2, 0] = tx[last, 0]; }
            if (Signal()) { cardTests = true; tx[last - 1, 2] = tx[last - 2, 2] = 0; }
            if (Signal()) { riskyNight = true; tx[last, 3] = NightFraudMerchants[rng.Next(3)]; }
            if (Signal()) { highAmount = true; tx[last, 2] = 3 + rng.Next(2); }
            tx[last, 4] = home;
        }
        // The shortcut: the latest device, from its own stream so that test and test_shortcut share everything else.
        var shortcutRng = ExampleRandom(seed, index, stream: labelIndependentShortcut ? 1 : 2);
        double pShortcut = labelIndependentShortcut ? o.ShortcutRateTest : fraud ? o.ShortcutRateFraud : o.ShortcutRateLegitimate;
        int shortcutDevice = Array.IndexOf(Devices, ShortcutDevice);
        if (shortcutRng.NextDouble() < pShortcut) tx[last, 5] = shortcutDevice;
        else if (tx[last, 5] == shortcutDevice) tx[last, 5] = (shortcutDevice + 1 + shortcutRng.Next(Devices.Length - 1)) % Devices.Length;
        var history = Enumerable.Range(0, last).ToArray();

        var tokens = new int[Length];
        tokens[0] = Token(TransactionField.AccountAge, age);
        for (int t = 0; t < Transactions; t++)
            for (int f = 0; f < FieldsPerTransaction; f++)
                tokens[Position(t, (TransactionField)(f + 1))] = Token((TransactionField)(f + 1), tx[t, f]);
        var facts = new Dictionary<string, double>
        {
            ["night"] = night ? 1 : 0,
            ["pattern"] = !fraud ? 0 : night ? 2 : 1,
            ["shortcut_device"] = tx[last, 5] == shortcutDevice ? 1 : 0,
            ["new_device"] = history.Any(t => tx[t, 5] == tx[last, 5]) ? 0 : 1,
            ["geo_mismatch"] = geoMismatch ? 1 : 0,
            ["risky_merchant_day"] = riskyDay ? 1 : 0,
            ["high_amount"] = highAmount ? 1 : 0,
            ["burst"] = burst ? 1 : 0,
            ["card_tests"] = cardTests ? 1 : 0,
            ["risky_merchant_night"] = riskyNight ? 1 : 0,
            ["account_age"] = age,
            ["amount"] = tx[last, 2],
        };
        return new CaseStudyExample(id, split, fraud ? 1 : 0, tokens, facts);
    }

    /// <summary>The data set: train and validation with the shortcut, test without it, test_shortcut = test's accounts with it.</summary>
    public override CaseStudyDataset Generate(long seed)
    {
        var examples = new List<CaseStudyExample>();
        long next = 0;
        for (int i = 0; i < Options.TrainCount; i++, next++) examples.Add(Render(seed, next, CaseStudySplits.Train, $"train-{i:D4}", false));
        for (int i = 0; i < Options.ValidationCount; i++, next++) examples.Add(Render(seed, next, CaseStudySplits.Validation, $"validation-{i:D4}", false));
        for (int i = 0; i < Options.TestCount; i++) examples.Add(Render(seed, next + i, CaseStudySplits.Test, $"test-{i:D4}", true));
        for (int i = 0; i < Options.TestCount; i++) examples.Add(Render(seed, next + i, CaseStudySplits.TestShortcut, $"test_shortcut-{i:D4}", false));
        string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        return new CaseStudyDataset
        {
            Name = Name, Generator = typeof(TransactionGenerator).FullName!, Version = Version, Seed = seed,
            Vocabulary = new CaseStudyVocabulary(TokenNames, Classes), Card = Card(Options), Examples = examples,
            Settings = new Dictionary<string, string>
            {
                ["train_count"] = F(Options.TrainCount), ["validation_count"] = F(Options.ValidationCount), ["test_count"] = F(Options.TestCount),
                ["fraud_rate"] = F(Options.FraudRate), ["night_rate_legitimate"] = F(Options.NightRateLegitimate), ["night_rate_fraud"] = F(Options.NightRateFraud),
                ["signal_rate"] = F(Options.SignalRate), ["noise_rate"] = F(Options.NoiseRate),
                ["shortcut_device"] = ShortcutDevice, ["shortcut_rate_fraud"] = F(Options.ShortcutRateFraud),
                ["shortcut_rate_legitimate"] = F(Options.ShortcutRateLegitimate), ["shortcut_rate_test"] = F(Options.ShortcutRateTest),
                ["transactions"] = F(Transactions), ["fields_per_transaction"] = F(FieldsPerTransaction),
            },
        };
    }

    /// <summary>Generates and writes the data set (examples.jsonl, manifest.json, DATACARD.md).</summary>
    public CaseStudyDataset Write(long seed, string directory)
    {
        var ds = Generate(seed);
        ds.Write(directory);
        return ds;
    }

    private static int Pick(Random rng, double[] p)
    {
        double u = rng.NextDouble(), c = 0;
        for (int i = 0; i < p.Length; i++) if (u < (c += p[i])) return i;
        return p.Length - 1;
    }

    private static DataCard Card(TransactionGeneratorOptions o)
    {
        string P(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        return new DataCard
        {
            Title = "Synthetic card transactions (case study 09: financial fraud)",
            Summary = $"Per account, its last {Transactions} card transactions (hour, time since the previous one, amount, merchant category, region, " +
                      "device fingerprint) and its age; the label says whether the latest transaction is fraudulent. Fraud follows one " +
                      "pattern by day and another at night, and one device fingerprint is planted as a spurious correlate of fraud.",
            Labels = $"legitimate / fraud (P(fraud) = {P(o.FraudRate)}; far above real-world rates, so that a small classifier sees both classes)",
            Tokens = $"{TokenNames.Length} input tokens: account age ({AccountAges.Length}), then per transaction hour ({Hours.Length}), gap ({Gaps.Length}), " +
                     $"amount ({Amounts.Length}), merchant ({Merchants.Length}), region ({Geographies.Length}), device ({Devices.Length}); {Length} tokens per account",
            Causes = new[]
            {
                new PlantedCause("night-time shift", $"P(latest transaction at 00–06 h) = {P(o.NightRateFraud)} for fraud, {P(o.NightRateLegitimate)} for legitimate; fraud at night follows the takeover pattern, by day the card-not-present pattern",
                    "every fraud case follows exactly one pattern, chosen by the hour", false),
                new PlantedCause("day: region", "latest transaction abroad (70 %) or outside the home region", $"P {P(o.SignalRate)} on day fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause("day: merchant", "latest merchant electronics or gift cards", $"P {P(o.SignalRate)} on day fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause("day: amount", "latest amount 300–3 000", $"P {P(o.SignalRate)} on day fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause("night: burst", "the last three transactions < 2 minutes apart", $"P {P(o.SignalRate)} on night fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause("night: card tests", "the two transactions before the latest < 10", $"P {P(o.SignalRate)} on night fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause("night: merchant", "latest merchant digital goods, crypto or ATM", $"P {P(o.SignalRate)} on night fraud, {P(o.NoiseRate)} on legitimate", false),
                new PlantedCause($"device {ShortcutDevice} (shortcut)", $"the latest device is {ShortcutDevice}; device novelty itself is not a cause (the usual device is kept with P 0.85 in both classes), it correlates with fraud only through {ShortcutDevice}, which is usually new to the account",
                    $"P {P(o.ShortcutRateFraud)} on fraud, {P(o.ShortcutRateLegitimate)} on legitimate in train/validation/test_shortcut; {P(o.ShortcutRateTest)} on both in test", true),
            },
            Privacy = "Entirely synthetic: every account and transaction is drawn from the seeded generator named in the manifest. No real customer, card, " +
                      "merchant or device data was used or can be recovered; the fingerprints are made-up hex labels.",
        };
    }
}
