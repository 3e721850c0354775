"""Word lists for ``ops.names_en``: first names that are also words, brands named after people, places,
first names the 1990 US census lists lack, chat words no dictionary has."""

from __future__ import annotations

import re
from pathlib import Path


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PARTICLES = _words("van von der den de da di del della la le du dos das ní ni nic mac bin binti ibn al el ap ter ten")
MONTHS = _words("April May June August")
# Chat words and contractions typed without an apostrophe that no dictionary has.
SLANG = _words(
    """pls plz thx ty tho lol lmao omg idk imo tbh btw fyi smh asap irl bday acct ur u r im ive id dont cant wont
    didnt doesnt isnt wasnt havent hasnt arent werent couldnt shouldnt wouldnt theyre youre thats whats hows
    gonna wanna gotta kinda sorta dunno lemme gimme ya yeah yep yup nah nope hiya xx xxx xo ok okay np ppl msg
    pic pics info approx qty pcs amt ref refs dm dms pm fwd thru tmrw tmr tonite rn atm aka etc vs abt bc cos coz cuz rly srsly wknd hrs mins yrs wks
    mths pwd pw acc hey hi hello hiya alot abit aswell ppl hun bro bruh sis fam"""
)
# Brands and products named after people, and payment services spaCy reads as people.
BRANDS = re.compile(
    r"(?i)\b(?:ralph lauren|tommy hilfiger|dr\.? martens|doc martens|jack daniel'?s|calvin klein|hugo boss|ted baker|"
    r"michael kors|kate spade|marc jacobs|tory burch|vera wang|tom ford|stella mccartney|victoria'?s secret|paul smith|"
    r"karl lagerfeld|louis vuitton|giorgio armani|christian dior|christian louboutin|yves saint laurent|jimmy choo|"
    r"johnnie walker|jack wolfskin|steve madden|sam edelman|ben (?:&|and) jerry'?s|jo malone|"
    r"est[ée]e lauder|charlotte tilbury|bobbi brown|marks (?:&|and) spencer|dolce (?:&|and) gabbana|oscar de la renta|"
    r"yankee candle|john lewis|jack wills|river island|new look|le creuset|mr\.? kipling|dr\.? oetker|fred perry|ben sherman|lyle (?:&|and) scott|"
    r"kenneth cole|anne klein|betsey johnson|ray-?ban|levi'?s|wendy'?s|mrs\.? fields|uncle ben'?s|aunt jemima|"
    r"(?:[A-Z][a-z]+ )?of the valley)\b"
)
BRAND_WORDS = _words(
    """klarna afterpay clearpay venmo zelle paypal stripe alipay affirm sezzle zip laybuy revolut monzo nike adidas puma
    reebok asics fila gucci prada chanel dior zara mango apple samsung sony dell lenovo asus acer ikea lego disney
    nintendo xbox playstation tesla toyota honda lexus audi skoda dyson bosch miele philips braun gillette nivea dove
    loreal lancome clinique sephora ulta costco walmart target tesco asda aldi lidl argos boots currys ebay etsy shein
    temu uber lyft fedex ups dhl usps hermes evri royal dpd yodel parcelforce gls tnt inpost ocado sainsburys morrisons
    waitrose primark asos boohoo zalando deliveroo trustpilot shopify netflix spotify whatsapp instagram facebook
    tiktok gmail hotmail outlook yahoo icloud""")
# First names that are ordinary English words or places: only a capital inside a sentence makes them names.
WORDLIKE = _words(
    """will may mark bill rose grace hope joy faith june april august art sky dawn summer chase hunter jack frank
    rich ray pat sue don gene guy nick rob sandy rusty buck penny ruby pearl iris lily daisy violet holly ivy jade
    crystal amber candy cherry honey star storm rain river forest autumn winter angel precious lane page dale glen
    drew miles norm max sterling earnest noble young long price bishop major king queen prince duke carter cook
    fisher mason miller porter taylor tanner walker wade rocky sonny sunny happy merry gay kitty patience prudence
    mercy charity destiny harmony unity trinity genesis eden heaven haven justice royal reign legend bliss cash
    cliff dean dash gray grey red sage al ed le la de an in so do else ever jean jan tuesday august sunday bob
    pierce ward bell bird fox wolf gold silver stone wood hill green brown black white love lovely ok okay
    christian jesus lord god van von del della di da dee ma mo pa su sol dot asa bud case chance clay cole earl
    elmo free gale grant harvey jewel reed rod ross roy son ty blanche bonnie cookie diamond ebony fern ginger
    goldie heather iris ivory lacy misty olive opal pansy pepper poppy raven robin spring temperance velvet willow
    china america india asia early""")
NEVER = _words(
    """January February March April May June July August September October November December Monday Tuesday
    Wednesday Thursday Friday Saturday Sunday Christmas Easter God Jesus Lord""")
# First names common now, or outside the US, that the 1990 census lists lack.
MODERN = _words(
    """aiden ayden jayden brayden kayden hayden aidan liam noah mason ethan logan lucas oliver elijah jackson
    grayson carter wyatt owen caleb landon hunter levi isaac gavin dylan tristan chase cole blake bryce
    nolan colton easton jaxon jace kai zane finn rowan declan silas asher ezra axel leo milo theo arlo
    ava mia sophia sofia olivia emma isabella madison chloe zoe zoey lily aubrey addison brooklyn avery
    harper evelyn abigail ella scarlett aria riley nora hazel layla luna willow stella aurora savannah
    skylar kylie mackenzie kayla makayla alexa peyton paisley everly nevaeh jayla aaliyah maya amelia
    isla freya poppy imogen niamh aoife siobhan saoirse ciara sinead oisin cian eoin ronan seamus
    priya ananya aditi pooja neha deepa kavya divya shreya anjali sunita anita rahul rohan arjun vikram
    ravi raj rajesh sanjay amit anil sunil vijay suresh ramesh ajay deepak manish nikhil karan arun
    mohammed muhammad mohamed ahmed ahmad ali omar hassan hussein yusuf ibrahim khalid tariq bilal hamza
    aisha fatima zainab maryam khadija amina layla yasmin noor leila samira nadia salma hana
    wei jing li min hui yan ying xin lei jun hao yang chen ming xiao yuki haruto yuto sota hina aoi sakura
    yui riko kenji hiroshi takashi akira ji-woo seo-yeon min-jun ji-hoon hye-jin
    kwame kofi ama akua chidi chinedu ngozi oluwaseun tunde ayodele emeka adebayo femi
    mateo santiago diego alejandro javier pablo sergio andres camila valentina lucia ximena mariana
    luca matteo giulia chiara francesca alessandro lorenzo giorgio pierre louis hugo jules camille
    manon lea chloe lukas jonas felix lena hannah leonie finn nils lars anders sven ingrid astrid freja
    dmitri dmitry sergei sergey ivan alexei alexey nikolai mikhail igor oleg vladimir olga natasha tatiana
    svetlana irina ekaterina anastasia yulia elena marina ksenia polina
    nguyen thanh minh linh trang huong phuong tuan duc anh thao""")
# First names that are, capitalised, more often places and brands in a shop's messages.
PLACES = _words(
    """georgia virginia carolina austin houston dallas denver phoenix sydney adelaide florence paris london chelsea
    jordan lincoln tiffany mercedes kansas indiana tennessee savannah orlando memphis aurora camden brooklyn
    columbia cleveland washington jackson hong kong china india dell ford""")
MODALS = _words("will may can must might shall should would")

# Relations before a name: "my gf Tolu", "her mum June Harlow".
KIN = (r"(?:wife|husband|son|daughter|mum|mom|mother|dad|father|sister|brother|friend|partner|boyfriend|girlfriend|"
       r"fianc[eé]e?|neighbour|neighbor|colleague|boss|roommate|flatmate|flat mate|grandma|grandpa|grandmother|"
       r"grandfather|grandson|granddaughter|gran|granny|nan|nana|nanna|grandad|granddad|aunt|auntie|uncle|cousin|niece|"
       r"nephew|kid|child|landlord|landlady|tenant|gf|bf|hubby|wifey|missus|bestie|mate|pal|ex|carer|nanny|"
       r"babysitter|twin|stepdad|stepmum|stepmom|stepson|stepdaughter|stepsister|stepbrother|"
       r"mother-in-law|father-in-law|sister-in-law|brother-in-law|son-in-law|daughter-in-law)")

# Street and place words: a name before them is a street ("Jackson Ave", "Larch Close").
STREET = re.compile(
    r"(?i)street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|circle|parkway|"
    r"highway|square|trail|loop|row|crescent|close|hill|park|plaza|mall|centre|center|station|airport|county|city"
)

# Words after a name that make it a place in any case: "jackson ave", "Victoria station".
PLACE_WORD = re.compile(r"(?i)street|st|avenue|ave|road|rd|boulevard|blvd|ln|parkway|highway|station|airport|county|city")

# Words spaCy's PERSON spans start with that make them no name.
NOT_NAME_START = re.compile(
    r"(?i)^(?:hi|hello|hey|thanks|thank you|bot|order|refund|paypal|visa|mastercard|amex|e-?mail|app|vip|wifi|"
    r"iphone|ipad|airpods|apple|google|microsoft|amazon|ok|okay|pin|sms)\b"
)


def census(path: Path) -> frozenset[str]:
    """Names, lower case, from one of the US census files the ``names`` package ships ("JAMES  3.318  3.318  1")."""
    return frozenset(line.split()[0].lower() for line in path.read_text(encoding="ascii").splitlines() if line.strip())
