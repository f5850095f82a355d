"""Embedded reference lists for the synthetic bank: names, places, merchants, free-text templates."""

from __future__ import annotations

# Weights follow rough UK frequency so that common names collide the way they do in real data.
MALE_FIRST = (
    ("James", 30), ("John", 28), ("David", 26), ("Michael", 24), ("William", 22), ("Robert", 20),
    ("Thomas", 18), ("Christopher", 16), ("Daniel", 16), ("Matthew", 15), ("Andrew", 15),
    ("Richard", 14), ("Paul", 14), ("Mark", 13), ("Peter", 12), ("Stephen", 12), ("Jonathan", 11),
    ("Anthony", 10), ("Joseph", 10), ("Edward", 9), ("Nicholas", 9), ("Benjamin", 9), ("Samuel", 9),
    ("Alexander", 8), ("Timothy", 7), ("Patrick", 7), ("Charles", 7), ("Henry", 6), ("Philip", 6),
    ("Gregory", 4), ("Kenneth", 4), ("George", 8), ("Oliver", 8), ("Harry", 7), ("Jack", 8),
    ("Jacob", 5), ("Oscar", 4), ("Leo", 4), ("Arthur", 4), ("Noah", 4), ("Mohammed", 6), ("Adam", 6),
    ("Ryan", 6), ("Liam", 5), ("Connor", 4), ("Callum", 4), ("Lewis", 4), ("Ian", 6), ("Simon", 6),
    ("Gary", 5), ("Neil", 4), ("Graham", 4), ("Keith", 3), ("Colin", 3), ("Trevor", 2), ("Barry", 2),
    ("Dean", 3), ("Lee", 4), ("Craig", 4), ("Darren", 3), ("Rhys", 3), ("Owen", 3), ("Dylan", 3),
    ("Ethan", 4), ("Luke", 5), ("Joshua", 5), ("Aaron", 3), ("Zachary", 2), ("Lawrence", 2),
)
FEMALE_FIRST = (
    ("Sarah", 24), ("Elizabeth", 22), ("Margaret", 14), ("Katherine", 12), ("Catherine", 12),
    ("Rebecca", 13), ("Jennifer", 12), ("Victoria", 12), ("Samantha", 10), ("Alexandra", 8),
    ("Susan", 12), ("Deborah", 8), ("Patricia", 9), ("Jessica", 11), ("Abigail", 8),
    ("Charlotte", 12), ("Eleanor", 8), ("Christine", 7), ("Jacqueline", 6), ("Frances", 4),
    ("Josephine", 4), ("Amanda", 8), ("Natalie", 7), ("Gillian", 5), ("Mary", 14), ("Emma", 16),
    ("Laura", 14), ("Hannah", 12), ("Sophie", 11), ("Emily", 12), ("Olivia", 11), ("Amelia", 8),
    ("Isla", 5), ("Ava", 5), ("Grace", 7), ("Chloe", 9), ("Lucy", 10), ("Ruby", 5), ("Ellie", 5),
    ("Megan", 7), ("Lauren", 8), ("Amy", 9), ("Rachel", 9), ("Claire", 9), ("Helen", 10),
    ("Karen", 8), ("Julie", 7), ("Joanne", 6), ("Nicola", 7), ("Louise", 7), ("Michelle", 7),
    ("Kelly", 5), ("Anne", 7), ("Jane", 7), ("Ruth", 5), ("Fiona", 5), ("Siobhan", 3), ("Aisha", 4),
    ("Priya", 4), ("Zara", 3),
)
LAST_NAMES = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price", "Bennett",
    "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey", "Collins",
    "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall", "Anderson", "Simpson",
    "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster", "Chapman", "Powell", "Webb", "Rogers",
    "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews", "Owen", "Palmer", "Holmes",
    "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell", "Barker", "Fisher", "Stevens",
    "Jenkins", "Murray", "Dixon", "Harvey", "Graham", "Pearson", "Ahmed", "Fletcher", "Walsh", "Kaur",
    "Gibson", "Howard", "Andrews", "Stewart", "Elliott", "Reynolds", "Saunders", "Payne", "Fox",
    "Ford", "Pearce", "Day", "Brooks", "West", "Lawrence", "Cole", "Atkinson", "Bradley", "Spencer",
    "Gill", "Dawson", "Ball", "Burton", "O'Brien", "Watts", "Rose", "Booth", "Perry", "Ryan", "Grant",
    "Wells", "Armstrong", "Francis", "Rees", "Hayes", "Hart", "Hudson", "Newman", "Barrett",
    "Webster", "Hunter", "Gregory", "Carr", "Lowe", "Page", "Marsh", "Riley", "Dunn", "Woods",
    "Parsons", "Berry", "Stone", "Reid", "Holland", "Hawkins", "Harding", "Porter", "Robertson",
    "Newton", "Oliver", "Reed", "Kennedy", "Williamson", "Bird", "Gardner", "Shah", "Dean", "Lane",
    "Cooke", "Bates", "Henderson", "Parry", "Burgess", "Bishop", "Walton", "Burns", "Nicholson",
    "Shepherd", "Ross", "Cross", "Long", "Freeman", "Warren", "Nicholls", "Hamilton", "Byrne",
    "Sutton", "McDonald", "Yates", "Hodgson", "Robson", "Curtis", "Hopkins", "O'Connor", "Harper",
    "Coleman", "Watkins", "Moss", "McCarthy", "Chambers", "O'Neill", "Griffin", "Sharp", "Hardy",
    "Wheeler", "Potter", "Osborne", "Johnston", "Gordon", "Doyle", "Wallace", "Jordan", "Hutchinson",
    "Rowe", "Burke", "Pritchard", "Gilbert", "Willis", "Higgins", "Read", "Miles", "Stevenson",
    "Hammond", "Arnold", "Buckley", "Walters", "Hewitt", "Barber", "Nelson", "Slater", "Austin",
    "Sullivan", "Whitehead", "Mann", "Frost", "Lambert", "Blake", "Akhtar", "Lynch", "Goodwin",
    "Barton", "Woodward", "Thomson", "Cunningham", "Quinn", "Barnett", "Baxter", "Clayton", "Nash",
    "Greenwood", "Jennings", "Holt", "Kemp", "Poole", "Gallagher", "Bond", "Stokes", "Tucker",
    "Davidson", "Fowler", "Heath", "Norman", "Middleton", "Lawson", "Banks", "French", "Stanley",
    "Jarvis", "Gibbs", "Ferguson", "Hayward", "Carroll", "Douglas", "Dickinson", "Todd", "Barlow",
    "Peters", "Lucas", "Knowles", "Hartley", "Miah", "Morton", "Field", "Morrison", "Norris",
    "Townsend", "Preston", "Hancock", "Thornton", "Baldwin", "Briggs", "Parkinson", "Cartwright",
)

# Formal first name -> the short forms people give to one system but not another.
NICKNAMES = {
    "William": ("Bill", "Will", "Billy"), "Robert": ("Bob", "Rob", "Bobby"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"), "Jonathan": ("Jon", "Jonny"), "James": ("Jim", "Jamie"),
    "Richard": ("Rick", "Rich", "Dick"), "Michael": ("Mike", "Mick"), "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris",), "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",),
    "Anthony": ("Tony", "Ant"), "Joseph": ("Joe",), "David": ("Dave",), "Andrew": ("Andy", "Drew"),
    "Edward": ("Ed", "Ted", "Eddie"), "Nicholas": ("Nick",), "Benjamin": ("Ben",), "Samuel": ("Sam",),
    "Alexander": ("Alex", "Sandy"), "Stephen": ("Steve",), "Peter": ("Pete",), "Timothy": ("Tim",),
    "Patrick": ("Pat", "Paddy"), "Charles": ("Charlie", "Chas"), "Henry": ("Harry", "Hal"),
    "Philip": ("Phil",), "Gregory": ("Greg",), "Kenneth": ("Ken", "Kenny"), "Lawrence": ("Larry",),
    "Zachary": ("Zach",), "Margaret": ("Maggie", "Peggy", "Meg"), "Katherine": ("Kate", "Katie"),
    "Catherine": ("Cathy", "Kate"), "Rebecca": ("Becky", "Becca"), "Jennifer": ("Jen", "Jenny"),
    "Victoria": ("Vicky", "Tori"), "Samantha": ("Sam", "Sammy"), "Alexandra": ("Alex", "Lexi"),
    "Susan": ("Sue", "Suzy"), "Deborah": ("Debbie", "Deb"), "Patricia": ("Pat", "Trish"),
    "Jessica": ("Jess",), "Abigail": ("Abby",), "Charlotte": ("Charlie", "Lottie"),
    "Eleanor": ("Ellie", "Nell"), "Christine": ("Chris", "Chrissie"), "Jacqueline": ("Jackie",),
    "Frances": ("Fran",), "Josephine": ("Jo", "Josie"), "Amanda": ("Mandy",), "Natalie": ("Nat",),
    "Gillian": ("Gill",),
}

STREETS = (
    "High", "Church", "Station", "Main", "Park", "Victoria", "Green", "Manor", "Kings", "Queens",
    "Mill", "School", "New", "Chapel", "London", "York", "Albert", "Windsor", "George", "Grange",
    "Elm", "Oak", "Beech", "Ash", "Cedar", "Willow", "Maple", "Springfield", "Highfield", "Meadow",
    "Orchard", "Bridge", "North", "South", "West", "Hill", "Castle", "Riverside", "Cromwell",
    "Westfield", "Stanley", "Richmond", "Brook", "Market", "Broad", "Sandy", "Clarence", "Alexandra",
    "Nelson", "Mount Pleasant",
)
STREET_TYPES = (
    ("Street", 30), ("Road", 35), ("Lane", 10), ("Avenue", 8), ("Close", 6), ("Drive", 5),
    ("Way", 3), ("Gardens", 3), ("Crescent", 3), ("Place", 2), ("Terrace", 2), ("Grove", 2),
)
# City, postcode areas, relative population weight.
CITIES = (
    ("London", ("E", "N", "SE", "SW", "W", "NW"), 14.0), ("Birmingham", ("B",), 5.0),
    ("Manchester", ("M",), 5.0), ("Leeds", ("LS",), 4.0), ("Glasgow", ("G",), 4.0),
    ("Liverpool", ("L",), 3.0), ("Bristol", ("BS",), 3.0), ("Sheffield", ("S",), 3.0),
    ("Edinburgh", ("EH",), 3.0), ("Cardiff", ("CF",), 2.5), ("Newcastle upon Tyne", ("NE",), 2.0),
    ("Nottingham", ("NG",), 2.0), ("Leicester", ("LE",), 2.0), ("Southampton", ("SO",), 1.5),
    ("Brighton", ("BN",), 1.5), ("Coventry", ("CV",), 1.5), ("Belfast", ("BT",), 2.0),
    ("Reading", ("RG",), 1.2), ("Oxford", ("OX",), 1.0), ("Cambridge", ("CB",), 1.0),
    ("York", ("YO",), 1.0), ("Aberdeen", ("AB",), 1.0), ("Norwich", ("NR",), 1.0),
    ("Exeter", ("EX",), 0.8), ("Plymouth", ("PL",), 1.0), ("Derby", ("DE",), 1.0),
    ("Bradford", ("BD",), 1.5), ("Hull", ("HU",), 1.0), ("Stoke-on-Trent", ("ST",), 1.0),
    ("Swansea", ("SA",), 1.0), ("Milton Keynes", ("MK",), 1.0), ("Bath", ("BA",), 0.6),
    ("Preston", ("PR",), 0.8), ("Sunderland", ("SR",), 0.8), ("Wolverhampton", ("WV",), 1.0),
)
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
# National Insurance prefixes exclude D, F, I, Q, U, V and O as a second letter.
NI_LETTERS = "ABCEGHJKLMNPRSTWXYZ"

EMAIL_DOMAINS = (
    ("gmail.com", 30), ("hotmail.co.uk", 12), ("outlook.com", 10), ("yahoo.co.uk", 8),
    ("icloud.com", 8), ("btinternet.com", 5), ("live.co.uk", 4), ("sky.com", 3), ("aol.com", 2),
    ("protonmail.com", 1),
)

LIFE_STAGES = ("student", "young_professional", "family", "established", "retired")
INCOME_BANDS = ("low", "middle", "high", "very_high")

# MCC, weight, median amount in GBP, log-sd, channel profile (store, online, atm).
MERCHANTS = (
    ("5411", 26, 28.0, 0.8, "store"), ("5812", 12, 24.0, 0.7, "store"), ("5814", 10, 7.5, 0.5, "store"),
    ("5541", 7, 48.0, 0.4, "store"), ("5311", 5, 42.0, 0.8, "store"), ("5912", 4, 11.0, 0.6, "store"),
    ("4111", 6, 6.0, 0.6, "store"), ("5999", 4, 22.0, 0.9, "store"), ("5691", 4, 55.0, 0.7, "store"),
    ("5732", 2, 120.0, 0.9, "store"), ("4814", 2, 25.0, 0.4, "online"), ("5815", 3, 9.99, 0.4, "online"),
    ("5816", 1, 6.0, 0.6, "online"), ("5968", 3, 11.0, 0.5, "online"), ("5942", 2, 14.0, 0.6, "online"),
    ("4121", 3, 14.0, 0.6, "online"), ("7011", 1, 140.0, 0.6, "store"), ("4511", 1, 180.0, 0.7, "online"),
    ("6011", 4, 60.0, 0.5, "atm"),
)
# Abroad: merchant country, local currency, GBP -> local rate, relative weight.
TRAVEL = (
    ("FR", "EUR", 1.16, 10), ("ES", "EUR", 1.16, 12), ("IT", "EUR", 1.16, 6), ("DE", "EUR", 1.16, 5),
    ("NL", "EUR", 1.16, 4), ("IE", "EUR", 1.16, 6), ("PT", "EUR", 1.16, 4), ("US", "USD", 1.27, 8),
    ("CH", "CHF", 1.12, 2), ("SE", "SEK", 13.4, 1), ("NO", "NOK", 13.6, 1), ("DK", "DKK", 8.7, 1),
    ("PL", "PLN", 5.0, 2), ("CA", "CAD", 1.72, 2), ("AU", "AUD", 1.93, 1), ("JP", "JPY", 190.0, 1),
)
# Countries the bank's customers rarely visit: account-takeover spend shows up here.
UNUSUAL_COUNTRIES = ("NG", "RU", "BR", "VN", "ID", "UA", "PH", "KE")
FRAUD_MCC = {"card_testing": ("5999", "5816", "5968"), "account_takeover": ("5732", "5944", "4829"),
             "unusual_mcc": ("7995", "4829", "6051")}

INTERACTION_TOPICS = (
    ("balance_enquiry", 20), ("card_issue", 12), ("address_change", 6), ("product_info", 14),
    ("fees", 8), ("online_banking_help", 12), ("mortgage_advice", 5), ("fraud_report", 3),
    ("complaint", 6), ("close_account", 2),
)
INTERACTION_OUTCOMES = (("resolved", 60), ("follow_up", 20), ("escalated", 8), ("sale", 7), ("no_action", 5))
OFFER_PRODUCTS = ("SAV", "LOAN", "MORT", "CARD", "INS")
OFFER_CHANNELS = ("email", "sms", "app", "branch", "phone")

COMPLAINT_CATEGORIES = (
    "fees_charges", "service", "cards", "mortgage", "fraud_scam", "online_banking", "account_management",
)
COMPLAINT_TEMPLATES = {
    "fees_charges": (
        "I was charged a {fee} fee of {amount} on my {product} without any warning.",
        "The {fee} charge of {amount} applied on {when} is not in my terms and conditions.",
    ),
    "service": (
        "Staff at the {city} branch were unhelpful when I asked about my {product}.",
        "I waited {n} minutes on the phone and the call was cut off twice.",
    ),
    "cards": (
        "My card was declined at a shop on {when} although I had funds available.",
        "My replacement card has not arrived after {n} days.",
    ),
    "mortgage": (
        "My mortgage payment of {amount} was taken twice this month.",
        "I asked for a payment holiday {n} days ago and have heard nothing back.",
    ),
    "fraud_scam": (
        "I reported a fraudulent transaction of {amount} {n} days ago and nobody has called back.",
        "A payment of {amount} left my {product} that I did not make.",
    ),
    "online_banking": (
        "The mobile app keeps logging me out and I cannot make payments.",
        "I have been locked out of online banking since {when}.",
    ),
    "account_management": (
        "My change of address from {n} days ago still has not been applied to my {product}.",
        "Statements for my {product} are being sent to my old address.",
    ),
}
COMPLAINT_FOLLOW_UPS = (
    "I want a refund and an apology.", "Please call me back as soon as possible.",
    "I am considering moving my accounts to another bank.", "This is the second time this has happened.",
    "I expect compensation for the time I have lost.",
)
FEE_NAMES = ("overdraft", "late payment", "foreign transaction", "account maintenance", "returned payment")
PRODUCT_NAMES = ("current account", "savings account", "credit card", "loan", "mortgage")
