// Reads an iCalendar file on stdin with Mozilla's ical.js (Thunderbird's parser, used by many web calendars)
// and prints each event as it understands it, as JSON: the test compares that with what was entered.
import ICAL from "ical.js";

let text = "";
for await (const chunk of process.stdin) text += chunk;
const calendar = new ICAL.Component(ICAL.parse(text));
for (const zone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(zone);
}
const events = calendar.getAllSubcomponents("vevent").map((component) => {
  const event = new ICAL.Event(component);
  const conference = component.getFirstProperty("conference");
  return {
    uid: event.uid,
    summary: event.summary,
    allDay: event.startDate.isDate,
    start: event.startDate.isDate ? event.startDate.toString() : event.startDate.toJSDate().toISOString(),
    end: event.endDate.isDate ? event.endDate.toString() : event.endDate.toJSDate().toISOString(),
    zone: event.startDate.zone ? event.startDate.zone.tzid : null,
    location: event.location,
    description: event.description,
    url: component.getFirstPropertyValue("url"),
    conference: conference ? conference.getFirstValue() : null,
    status: component.getFirstPropertyValue("status"),
  };
});
process.stdout.write(JSON.stringify(events));
