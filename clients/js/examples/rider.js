// The example rider app (/ops/try/rider.html): click the map to set the pickup, click again
// for the drop-off: the ride is requested. Shows the trip as the SDK keeps it.
import { connectRider } from '../src/index.js';
import { getToken, log, makeMap, marker, wsBase } from './common.js';

const token = getToken('rider');
const map = makeMap();
const pickupM = marker(map, '#2e7d32');
const dropoffM = marker(map, '#c62828');
const driverM = marker(map, '#1565c0');
let pickup = null;
const $ = (id) => document.getElementById(id);
window.meridianExample = { trip: null, events: [] };

// What the rider is told, by the trip's status (the trip as the SDK keeps it: it follows
// the ride's events, so the hint does too).
const HINTS = {
  requested: 'requested: waiting for a driver',
  offered: 'requested: waiting for a driver',
  matched: 'a driver is on the way to the pickup',
  arrived: 'your driver is at the pickup',
  started: 'on the way to the drop-off',
  completed: 'arrived: click the pickup for another ride',
  cancelled: 'cancelled: click the pickup for another ride',
  no_driver: 'no driver found: click the pickup to try again',
};
function hintFor(trip) {
  return (trip && HINTS[trip.status]) || 'click the pickup';
}

function show(trip) {
  window.meridianExample.trip = trip;
  // the live trip, else the last one (its end); not while a new pickup waits for its drop-off
  const trips = window.meridianExample.rider ? [...window.meridianExample.rider.trips.values()] : [];
  if (!pickup) $('hint').textContent = hintFor(trip || trips[trips.length - 1]);
  $('trip').textContent = trip ? `${trip.trip_id}: ${trip.status}${trip.driver_id ? ` (driver ${trip.driver_id})` : ''}` : 'no trip';
  if (trip && trip.driver) driverM.setLngLat([trip.driver.lon, trip.driver.lat]).addTo(map);
  $('cancel').disabled = !trip || !trip.request_id || ['completed', 'cancelled', 'no_driver'].includes(trip.status);
}

if (token) {
  connectRider({ url: wsBase, token }).then((rider) => {
    window.meridianExample.rider = rider;
    $('state').textContent = 'connected';
    rider.on('open', (e) => e.reconnected && log('reconnected'));
    rider.on('close', () => ($('state').textContent = 'reconnecting…'));
    rider.on('open', () => ($('state').textContent = 'connected'));
    for (const ev of ['trip', 'matched', 'no_driver', 'resync']) {
      rider.on(ev, (m) => {
        window.meridianExample.events.push(ev);
        log(`${ev} ${m && (m.status || m.trip_id || (m.trip && m.trip.status)) || ''}`);
        show(rider.trip);
      });
    }
    rider.on('error', (e) => log(`error ${e.message}`));
    map.on('click', async (e) => {
      const p = { lat: e.lngLat.lat, lon: e.lngLat.lng };
      if (!pickup) {
        pickup = p;
        pickupM.setLngLat([p.lon, p.lat]).addTo(map);
        $('hint').textContent = 'now click the drop-off';
        return;
      }
      dropoffM.setLngLat([p.lon, p.lat]).addTo(map);
      $('hint').textContent = 'requesting…';
      try {
        const { request_id } = await rider.request({ pickup, dropoff: p });
        log(`request ${request_id} acked`);
        $('hint').textContent = rider.trip ? hintFor(rider.trip) : HINTS.requested; // its events may have come first
      } catch (err) {
        log(`request refused: ${err.message}`);
        $('hint').textContent = 'click the pickup';
      }
      pickup = null;
    });
    $('cancel').onclick = async () => {
      const t = rider.trip;
      if (t && t.request_id) await rider.cancel(t.request_id).catch((err) => log(err.message));
    };
  }).catch((e) => {
    $('state').textContent = `not connected: ${e.message}`;
  });
}
